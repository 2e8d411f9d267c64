"""Shared plumbing for the engine benches: databases, bulk rows, node processes, stats.

Bulk rows go straight through the store's schema tables (the bench measures the engine,
not how fast a client can call `enqueue` one row at a time).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import psutil
import psycopg
import sqlalchemy as sa

from cronhive.engine import executions as new
from cronhive.engine.node import NodeConfig
from cronhive.model import JobSpec, RetryPolicy, RunSpec, RunState
from cronhive.schedule import parse_schedule
from cronhive.store import Store, open_store
from cronhive.store import _rows as rows
from cronhive.store.schema import executions, jobs
from cronhive.store.sql import SqlStore

PG_ADMIN = os.environ.get("CRONHIVE_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
TERMINAL = sorted(str(s) for s in RunState if s.terminal)


def now() -> datetime:
    return datetime.now(UTC)


def pct(values: Sequence[float], q: float) -> float:
    """The q-quantile (0..1) by nearest rank; nan for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


# --- databases ---------------------------------------------------------------------


def pg_url(name: str) -> str:
    return PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"


@contextlib.contextmanager
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database, dropped afterwards; yields its URL."""
    name = f"cronhive_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield pg_url(name)
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.asynccontextmanager
async def opened(url: str) -> AsyncIterator[SqlStore]:
    store = await open_store(url)
    assert isinstance(store, SqlStore)
    try:
        yield store
    finally:
        await store.close()


# --- bulk rows ---------------------------------------------------------------------


async def enqueue_adhoc(store: SqlStore, argv: tuple[str, ...], n: int, batch: int) -> None:
    """`n` queued ad-hoc runs of `argv`, `batch` rows per transaction, each batch announced
    with a `runs` notification as `Store.enqueue` would."""
    run = RunSpec(command=argv)
    for start in range(0, n, batch):
        t = now()
        values = [
            rows.execution_values(new.adhoc("user:bench", run, t))
            for _ in range(min(batch, n - start))
        ]
        async with store._write() as tx:
            await tx.run(executions.insert(), values)
            tx.note("runs")


async def insert_jobs(store: SqlStore, specs: Sequence[tuple[JobSpec, datetime]]) -> None:
    """Jobs with their first fire time, in one transaction per 1,000."""
    t = now()
    for start in range(0, len(specs), 1000):
        values = [
            {
                "id": uuid.uuid4(),
                **rows.spec_values(spec),
                "next_fire_at": first,
                "success_count": 0,
                "failure_count": 0,
                "created_by": "bench",
                "created_at": t,
                "updated_at": t,
            }
            for spec, first in specs[start : start + 1000]
        ]
        async with store._write() as tx:
            await tx.run(jobs.insert(), values)
            tx.note("jobs")


def job(name: str, argv: tuple[str, ...], schedule: str) -> tuple[JobSpec, datetime]:
    kind = "interval" if schedule.startswith("every") else "cron"
    sched = parse_schedule(kind, schedule, seed=name)
    spec = JobSpec(name=name, owner="user:bench", run=RunSpec(command=argv), schedule=sched)
    first = sched.next_after(now() + timedelta(seconds=2))
    assert first is not None
    return spec, first


def far_daily() -> str:
    """A daily cron time 12 hours from now (never due during a bench)."""
    return f"0 {(now().hour + 12) % 24} * * *"


async def clone_jobs_pg(url: str, template_name: str, count: int, prefix: str) -> None:
    """`count` copies of one job row (new id, name `prefix-N`, next fire spread over the
    coming hours) with one INSERT ... SELECT: a million rows in seconds."""
    cols = [c.name for c in jobs.columns]
    exprs = []
    for c in cols:
        if c == "id":
            exprs.append("gen_random_uuid()")
        elif c == "name":
            exprs.append(f"'{prefix}-' || g")
        elif c == "next_fire_at":
            exprs.append("now() + interval '2 hours' + g * interval '40 ms'")
        else:
            exprs.append(f"t.{c}")
    sql = (
        f"INSERT INTO jobs ({', '.join(cols)}) SELECT {', '.join(exprs)} "
        f"FROM jobs t, generate_series(1, {count}) g WHERE t.name = %s"
    )
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute(sql, (template_name,))
        await conn.execute("ANALYZE jobs")


async def count_terminal(store: SqlStore) -> int:
    async with store._reader.connect() as conn:
        found = await conn.execute(
            sa.select(sa.func.count()).where(executions.c.state.in_(TERMINAL))
        )
        return int(found.scalar_one())


async def count_state(store: SqlStore, state: RunState) -> int:
    async with store._reader.connect() as conn:
        found = await conn.execute(
            sa.select(sa.func.count()).where(executions.c.state == str(state))
        )
        return int(found.scalar_one())


async def wait_terminal(store: SqlStore, n: int, within: float, poll: float = 0.02) -> float:
    """Polls until `n` executions are terminal; returns the monotonic time it saw them."""
    deadline = time.monotonic() + within
    while await count_terminal(store) < n:
        if time.monotonic() > deadline:
            raise TimeoutError(f"fewer than {n} runs terminal after {within}s")
        await asyncio.sleep(poll)
    return time.monotonic()


# --- node processes ----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


_PRCTL = ctypes.CDLL(None).prctl if sys.platform == "linux" else None  # before any fork


def _die_with_parent() -> None:
    """In the child: SIGTERM when the bench dies, so no node outlives a killed bench."""
    if _PRCTL is not None:
        _PRCTL(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def spawn_node(
    db_url: str, workdir: Path, name: str, *, capacity: int, isolation: str | None = None
) -> subprocess.Popen[bytes]:
    """`python -m cronhive server` as a separate process, logging to workdir/NAME.log.
    `isolation`: "bwrap" or "none" (`--isolation`); None keeps the shipped default.
    Call it from the main thread: the node is signalled when the spawning thread ends."""
    extra = () if isolation is None else ("--isolation", isolation)
    with open(workdir / f"{name}.log", "ab") as log:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cronhive",
                "server",
                "--db",
                db_url,
                "--data-dir",
                str(workdir / name),
                "--name",
                name,
                "--listen",
                f"127.0.0.1:{free_port()}",
                "--web",
                f"127.0.0.1:{free_port()}",
                "--capacity",
                str(capacity),
                "--log-level",
                "warning",
                *extra,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )


async def wait_nodes(store: Store, names: set[str], within: float = 60.0) -> dict[str, uuid.UUID]:
    """Waits until nodes with these names hold live leases; returns name -> node id."""
    deadline = time.monotonic() + within
    while True:
        live = {
            n.name: n.id for n in await store.list_nodes(now=now()) if n.lease_expires_at > now()
        }
        if names <= set(live):
            return {k: v for k, v in live.items() if k in names}
        if time.monotonic() > deadline:
            raise TimeoutError(f"nodes {sorted(names - set(live))} did not start")
        await asyncio.sleep(0.1)


def stop_node(proc: subprocess.Popen[bytes], within: float = 30.0) -> None:
    """SIGTERM (a clean drain), SIGKILL if it does not end in time."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(within)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def node_rss(url: str, workdir: Path, name: str, settle: float = 3.0) -> tuple[float, float]:
    """RSS (now, peak) in MB of a `cronhive server` of its own, `settle` s after it joined."""
    async with opened(url) as store:
        proc = spawn_node(url, workdir, name, capacity=16)
        try:
            await wait_nodes(store, {name})
            await asyncio.sleep(settle)
            return rss_mb(proc.pid)
        finally:
            stop_node(proc)


def rss_mb(pid: int) -> tuple[float, float]:
    """Resident set size now and its peak (VmHWM), in MB."""
    rss = psutil.Process(pid).memory_info().rss / 1e6
    peak = rss
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                peak = int(line.split()[1]) * 1024 / 1e6
    return rss, peak


@dataclass
class Cluster:
    store: SqlStore  # the bench's own connection to the cluster's database
    procs: list[subprocess.Popen[bytes]]
    blob_dirs: list[Path]  # each node's local blob store (its archived output)

    def stop(self) -> None:
        """Stops every node (a clean drain); the database stays until the cluster ends."""
        for proc in self.procs:
            stop_node(proc)


@contextlib.asynccontextmanager
async def cluster(
    backend: str,
    workdir: Path,
    *,
    nodes: int,
    capacity: int,
    isolation: str | None,
    setup: Callable[[SqlStore], Awaitable[None]],
) -> AsyncIterator[Cluster]:
    """A fresh database ("sqlite": a file, one node; "pg": a database of its own, dropped
    after), `setup` run on it, then `nodes` `cronhive server` processes, all live when
    this yields; the nodes are stopped on the way out, whatever happened. Setup comes
    first because an SQLite node hears of other processes' writes only when it polls."""
    if backend == "sqlite" and nodes != 1:
        raise ValueError("an SQLite file has one node")
    tag = uuid.uuid4().hex[:8]
    with contextlib.ExitStack() as stack:
        if backend == "sqlite":
            url = f"sqlite:///{workdir / f'{tag}.db'}"
        else:
            url = stack.enter_context(pg_database())
        async with opened(url) as store:
            await setup(store)
            names = {f"{tag}-{i}" for i in range(1, nodes + 1)}
            running = Cluster(
                store=store, procs=[], blob_dirs=[workdir / n / "blobs" for n in sorted(names)]
            )
            try:
                for name in sorted(names):
                    running.procs.append(
                        spawn_node(url, workdir, name, capacity=capacity, isolation=isolation)
                    )
                await wait_nodes(store, names)
                yield running
            finally:
                running.stop()


async def raw_rate(n: int, concurrency: int) -> float:
    """Runs/s of `n` `/bin/true` spawned and waited for by asyncio, `concurrency` at once."""
    sem = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with sem:
            proc = await asyncio.create_subprocess_exec("/bin/true")
            await proc.wait()

    t0 = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(n)))
    return n / (time.perf_counter() - t0)


def retry_once() -> RetryPolicy:
    return RetryPolicy(max_retries=1, delay=0.0)


def node_config(name: str, spool: Path, capacity: int, store: SqlStore) -> NodeConfig:
    """An in-process node as `cronhive server` makes it: the lease renewed from its own
    thread and connection (engine/lease.py), runs not sandboxed."""
    return NodeConfig(
        name=name,
        spool_dir=spool,
        capacity=capacity,
        lease_store=partial(open_store, store.url),
    )
