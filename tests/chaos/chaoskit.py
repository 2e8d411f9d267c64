"""Fault injection for the chaos suite: a private PostgreSQL cluster, a TCP proxy that can
hang, node processes that can be frozen, killed or skewed in time, and a ledger of the
side effects the runs' commands leave outside cronhive.

Nothing here touches the machine's shared PostgreSQL: every cluster is initdb'ed into a
fresh folder and listens on its own free port.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import psutil
import psycopg
import tomli_w

from cronhive.engine.executions import triggered
from cronhive.model import (
    Execution,
    Job,
    JobSpec,
    OutputChunk,
    RetryPolicy,
    RunSpec,
    RunState,
    Stream,
)
from cronhive.schedule import parse_schedule
from cronhive.store import Store, open_store

PG_BIN = Path("/usr/lib/postgresql/15/bin")
FAKETIME_LIB = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")
SHARED_PG_PORT = 5432  # the machine's shared server: never ours


def free_port() -> int:
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port != SHARED_PG_PORT:
            return port


def scratch_dir(prefix: str) -> Path:
    """A folder under /tmp that the `postgres` user and the runs' users can reach (pytest's
    tmp_path sits under a 0700 folder)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


async def wait_for(
    check: Callable[[], Awaitable[bool]], *, within: float, every: float = 0.1, what: str = ""
) -> float:
    """Polls `check` until true and returns the seconds it took; fails after `within`."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while not await check():
        if loop.time() - start > within:
            raise AssertionError(f"{what or 'condition'} not met within {within:g}s")
        await asyncio.sleep(every)
    return loop.time() - start


# --- PostgreSQL ---------------------------------------------------------------------------

_PG_CONF = """
listen_addresses = '127.0.0.1'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 300
shared_buffers = 32MB
wal_level = replica
max_wal_senders = 5
hot_standby = on
log_line_prefix = '%m [%p] %a '
log_lock_waits = on
"""


class PgCluster:
    """One private PostgreSQL 15 cluster, run as the `postgres` OS user (initdb refuses
    root), in `root` (owned by postgres), on its own port and socket folder."""

    def __init__(self, root: Path, port: int | None = None) -> None:
        self.root = root
        self.data = root / "data"
        self.sock = root / "sock"
        self.log = root / "postgres.log"
        self.port = port or free_port()
        assert self.port != SHARED_PG_PORT

    @classmethod
    def create(cls, root: Path) -> PgCluster:
        shutil.chown(root, "postgres", "postgres")
        pg = cls(root)
        pg.sock.mkdir()
        shutil.chown(pg.sock, "postgres", "postgres")
        pg._as_postgres(
            "initdb", "-D", str(pg.data), "-U", "postgres", "-A", "trust",
            "--no-sync", "-E", "UTF8", "--locale=C",
        )  # fmt: skip
        with (pg.data / "postgresql.conf").open("a") as conf:
            conf.write(_PG_CONF)
        return pg

    def _as_postgres(self, tool: str, *args: str, timeout: float = 90) -> str:
        done = subprocess.run(
            ["runuser", "-u", "postgres", "--", str(PG_BIN / tool), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=self.root,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{tool} {args}: rc {done.returncode}\n{done.stdout}{done.stderr}")
        return done.stdout

    def start(self) -> None:
        self._as_postgres(
            "pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60",
            "-o", f"-p {self.port} -k {self.sock}", "start",
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        """`fast` (clients disconnected, clean shutdown) or `immediate` (a crash)."""
        self._as_postgres("pg_ctl", "-D", str(self.data), "-w", "-t", "60", "-m", mode, "stop")

    def restart(self, mode: str = "fast", down_for: float = 0.0) -> tuple[float, float]:
        """Stops and starts again; returns (went down, answers again) as time.time()."""
        down = time.time()
        self.stop(mode)
        time.sleep(down_for)
        self.start()
        return down, time.time()

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def url(self, db: str = "cronhive") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{db}"

    @contextlib.contextmanager
    def admin(self, db: str = "postgres") -> Iterator[psycopg.Connection[Any]]:
        with psycopg.connect(self.url(db), autocommit=True, connect_timeout=5) as conn:
            yield conn

    def create_database(self, name: str = "cronhive") -> str:
        with self.admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def terminate_backends(self, db: str = "cronhive") -> int:
        """pg_terminate_backend on every session of `db` (the nodes'); returns how many."""
        with self.admin() as conn:
            rows = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (db,),
            ).fetchall()
        return sum(1 for (ok,) in rows if ok)

    def deadlocks(self, db: str = "cronhive") -> int:
        with self.admin() as conn:
            row = conn.execute(
                "SELECT deadlocks FROM pg_stat_database WHERE datname = %s", (db,)
            ).fetchone()
        assert row is not None
        return int(row[0])

    def in_recovery(self) -> bool:
        with self.admin() as conn:
            row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
        return bool(row and row[0])

    def make_standby(self, root: Path) -> PgCluster:
        """A streaming standby of this (running) cluster, started, in `root`."""
        shutil.chown(root, "postgres", "postgres")
        standby = PgCluster(root)
        standby.sock.mkdir()
        shutil.chown(standby.sock, "postgres", "postgres")
        self._as_postgres(
            "pg_basebackup", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
            "-D", str(standby.data), "-R", "-X", "stream", "-c", "fast",
        )  # fmt: skip
        standby.start()
        return standby

    def promote(self) -> None:
        self._as_postgres("pg_ctl", "-D", str(self.data), "-w", "-t", "60", "promote")

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def destroy(self) -> None:
        if self.running():
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


# --- node processes ------------------------------------------------------------------------


def clean_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CRONHIVE_", "FAKETIME"))}
    env.pop("LD_PRELOAD", None)
    env["HOME"] = str(home)
    env["PYTHONUNBUFFERED"] = "1"
    return env


class ChaosNode:
    """`cronhive server --config DATA_DIR/cronhive.toml` as an OS process, logging to
    ROOT/NAME.log. `skew` ("+10s", "-10s") runs it under libfaketime, as a badly
    synchronised machine: its wall clock is off by the skew, and its monotonic clock by
    a constant, which changes no interval the node measures. (Leaving CLOCK_MONOTONIC
    unfaked is worse: libfaketime 0.9.10 then mistranslates CPython's monotonic timed
    waits, so time.sleep fails with EINVAL and a thread waiting for the GIL stops waiting
    at once; the node's threads hand the GIL back and forth and its lease keeper stalled
    for seconds on a loaded host.)"""

    def __init__(
        self,
        root: Path,
        name: str,
        db: str,
        *,
        lease_ttl: float = 2.0,
        grace: float = 2.0,
        capacity: int = 16,
        skew: str | None = None,
        settings: dict[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.db = db
        self.data_dir = root / name
        self.config = self.data_dir / "cronhive.toml"
        self.log = root / f"{name}.log"
        self.listen = f"127.0.0.1:{free_port()}"
        self.settings: dict[str, Any] = {
            "data_dir": str(self.data_dir),
            "db": db,
            "listen": self.listen,
            "web": "off",
            # The faults here are about coordination; the runs append to a ledger in this
            # test's folder, which a sandboxed run (private /tmp, another uid) cannot see.
            "isolation": "none",
            "name": name,
            "capacity": capacity,
            "lease_ttl": lease_ttl,
            "grace": grace,
            **(settings or {}),
        }
        self.skew = skew
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def certs(self) -> Path:
        return self.data_dir / "certs"

    def start(self) -> ChaosNode:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.config.write_text(tomli_w.dumps(self.settings))
        env = clean_env(self.data_dir)
        if self.skew is not None:
            assert FAKETIME_LIB.exists(), "apt-get install faketime (scripts/test does)"
            env.update(
                LD_PRELOAD=str(FAKETIME_LIB),
                FAKETIME=self.skew,
            )
        self.starts += 1
        with self.log.open("ab") as log:
            log.write(f"=== chaos: start #{self.starts} of {self.name} ===\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "cronhive", "server", "--config", str(self.config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.data_dir,
                start_new_session=True,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def freeze(self) -> None:
        self.signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self.signal(signal.SIGCONT)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        assert self.proc is not None
        self.proc.wait(10)

    def terminate(self) -> None:
        self.signal(signal.SIGTERM)

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    async def exited(self, timeout: float) -> int:
        """Waits (without blocking the event loop) for the process to end; its exit code."""
        return await asyncio.to_thread(self.wait, timeout)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def cleanup(self) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                self.thaw()
                self.signal(signal.SIGKILL)
        if self.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(10)

    def cli(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """The `cronhive` CLI against this node, with its development certificates."""
        argv = [sys.executable, "-m", "cronhive", "--server", self.listen,
                "--certs", str(self.certs), *args]  # fmt: skip
        return subprocess.run(
            argv,
            capture_output=True,
            text=True,
            env=clean_env(self.data_dir),
            timeout=timeout,
            check=False,
        )


def logs_of(nodes: Iterable[ChaosNode], tail: int = 4000) -> str:
    """The end of each node's log, for assertion messages."""
    return "\n".join(f"--- {n.name}.log\n{n.log_text()[-tail:]}" for n in nodes)


# --- the side-effect ledger ---------------------------------------------------------------

# What every ledger line carries, from the run's environment. The wall clock is read with
# date(1) (a Python start-up per run is too slow) outside any libfaketime preload.
_FIELDS = (
    "$CRONHIVE_JOB|$CRONHIVE_SLOT|$CRONHIVE_ATTEMPT|$CRONHIVE_NODE|$CRONHIVE_FENCE"
    "|$CRONHIVE_RUN_ID|$$"
)
_NOW = "$(env -u LD_PRELOAD -u FAKETIME date +%s.%N)"


@dataclass(frozen=True, kw_only=True)
class Entry:
    """One ledger line: `kind` is start, tick (a grandchild's pulse while the run lives),
    end, or run (a short command's one line)."""

    kind: str
    job: str
    slot: str
    attempt: str
    node: str
    fence: str
    run_id: str
    pid: int
    at: float


class Ledger:
    """A file outside cronhive that each run's command appends its lines to (O_APPEND
    writes of one short line are atomic), so tests see what really ran, and when."""

    _frozen: list[Entry] | None = None

    def __init__(self, path: Path) -> None:
        self.path = path
        path.touch()
        path.chmod(0o666)

    def freeze(self) -> Ledger:
        """The ledger as it is now. Read it *before* the database's rows: a run's row
        commits before its command can write a line, so every line then has its row
        (read after the rows, lines of runs fired meanwhile would have none)."""
        frozen = Ledger.__new__(Ledger)
        frozen.path, frozen._frozen = self.path, self.entries()
        return frozen

    def _line(self, kind: str) -> str:
        return f'echo "{kind}|{_FIELDS}|{_NOW}" >> {self.path}'

    def quick(self) -> tuple[str, ...]:
        """A command that leaves one `run` line and exits 0."""
        return ("sh", "-c", self._line("run"))

    def ticking(self, seconds: float, every: float = 0.2) -> tuple[str, ...]:
        """`start`, then a grandchild's `tick` every `every` s for `seconds`, then `end`;
        a process tree killed early leaves its last tick as its time of death."""
        script = (
            f"{self._line('start')}; "
            f"( while :; do {self._line('tick')}; sleep {every}; done ) & "
            f"sleep {seconds}; kill $!; {self._line('end')}"
        )
        return ("sh", "-c", script)

    def printing(self, lines: int, every: float = 1.0) -> tuple[str, ...]:
        """Prints `expected_output(run_id, lines)` a line every `every` s, ledger start/end."""
        script = (
            f"{self._line('start')}; i=1; while [ $i -le {lines} ]; do "
            f'echo "run $CRONHIVE_RUN_ID line $i of {lines}"; i=$((i+1)); sleep {every}; '
            f"done; {self._line('end')}"
        )
        return ("sh", "-c", script)

    def entries(self) -> list[Entry]:
        if self._frozen is not None:
            return self._frozen
        found = []
        for raw in self.path.read_text().splitlines():
            parts = raw.split("|")
            if len(parts) != 9:
                continue  # (a line cut by a kill; never expected from an O_APPEND echo)
            kind, job, slot, attempt, node, fence, run_id, pid, at = parts
            found.append(
                Entry(
                    kind=kind, job=job, slot=slot, attempt=attempt, node=node, fence=fence,
                    run_id=run_id, pid=int(pid), at=float(at),
                )
            )  # fmt: skip
        return found

    def by_run(self) -> dict[str, list[Entry]]:
        runs: dict[str, list[Entry]] = {}
        for e in self.entries():
            runs.setdefault(e.run_id, []).append(e)
        return runs

    def kill_leftovers(self) -> None:
        """Kills every process still writing to this ledger (orphans of killed nodes)."""
        mark = str(self.path)
        for proc in psutil.process_iter(["cmdline"]):
            with contextlib.suppress(psutil.Error):
                if any(mark in part for part in proc.info["cmdline"] or ()):
                    proc.kill()


def expected_output(run_id: str, lines: int) -> bytes:
    return b"".join(f"run {run_id} line {i} of {lines}\n".encode() for i in range(1, lines + 1))


# --- what the database recorded -----------------------------------------------------------


async def executions(store: Store, job_id: Any = None) -> list[Execution]:
    return await store.list_executions(visible_to=None, job_id=job_id, limit=1_000_000)


@contextlib.asynccontextmanager
async def fresh_store(url: str) -> Any:
    """A store of the test's own, opened for one look (the test's connections do not
    survive the restarts and terminations it inflicts)."""
    store = await open_store(url)
    try:
        yield store
    finally:
        await store.close()


async def stored_output(store: Store, execution_id: Any, stream: Stream = Stream.STDOUT) -> bytes:
    """The stream's bytes as stored, failing if any byte is stored twice or missing
    between chunks."""
    chunks: list[OutputChunk] = []
    after = -1
    while True:
        page = await store.read_output(execution_id, streams=[stream], after_seq=after)
        if not page:
            break
        chunks += page
        after = page[-1].seq
    data = b""
    for c in sorted(chunks, key=lambda c: (c.offset, c.seq)):
        assert c.offset == len(data), (
            f"{execution_id}: chunk at offset {c.offset} after {len(data)} bytes "
            f"({'overlap: bytes stored twice' if c.offset < len(data) else 'a hole'})"
        )
        data += c.data
    return data


def utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def seconds(dt: timedelta) -> float:
    return dt.total_seconds()


# --- one test's world ----------------------------------------------------------------------


def job_spec(
    command: tuple[str, ...],
    *,
    name: str,
    schedule: str | None = None,
    retry: RetryPolicy | None = None,
) -> JobSpec:
    sched = None
    if schedule is not None:
        sched = parse_schedule("interval" if schedule.startswith("every") else "cron", schedule)
    return JobSpec(
        name=name,
        owner="user:alice",
        run=RunSpec(command=command),
        schedule=sched,
        retry=retry or RetryPolicy(),
    )


class Chaos:
    """A private PostgreSQL cluster with database `cronhive`, a ledger, the test's own
    store, and the nodes a test starts; `close()` leaves nothing running."""

    def __init__(self, root: Path, pg: PgCluster, store: Store) -> None:
        self.root = root
        self.pg = pg
        self.url = pg.url()
        self.store = store
        self.ledger = Ledger(root / "ledger")
        self.nodes: list[ChaosNode] = []
        self.extra_clusters: list[PgCluster] = []

    def node(self, name: str, *, db: str | None = None, **options: Any) -> ChaosNode:
        node = ChaosNode(self.root, name, db or self.url, **options)
        self.nodes.append(node)
        return node

    def start_nodes(self, names: Iterable[str], **options: Any) -> list[ChaosNode]:
        return [self.node(name, **options).start() for name in names]

    async def wait_joined(
        self, names: Iterable[str], *, within: float = 60, alive: bool = True
    ) -> dict[str, UUID]:
        """Waits until each named node is registered (with `alive`, holding a lease that is
        live by the test's clock); returns their newest ids."""
        wanted = set(names)
        found: dict[str, UUID] = {}

        async def joined() -> bool:
            for n in self.nodes:
                if n.name in wanted and n.proc is not None and n.proc.poll() is not None:
                    raise AssertionError(f"node {n.name} exited\n{self.logs()}")
            now = datetime.now(UTC)
            rows = sorted(await self.store.list_nodes(now=now), key=lambda n: n.started_at)
            found.clear()
            found.update({n.name: n.id for n in rows if n.alive(now) or not alive})
            return wanted <= set(found)

        try:
            await wait_for(joined, within=within, what=f"nodes {sorted(wanted)} joined")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.logs()}") from None
        return {k: v for k, v in found.items() if k in wanted}

    async def create_job(
        self,
        command: tuple[str, ...],
        *,
        name: str,
        schedule: str | None = None,
        retry: RetryPolicy | None = None,
        first_at: datetime | None = None,
    ) -> Job:
        spec = job_spec(command, name=name, schedule=schedule, retry=retry)
        now = datetime.now(UTC)
        first = None
        if spec.schedule is not None:
            first = spec.schedule.next_after(first_at or now)
        return await self.store.create_job(spec, next_fire_at=first, created_by="alice", now=now)

    async def trigger(self, job: Job) -> Execution:
        return await self.store.enqueue(triggered(job, datetime.now(UTC)))

    def deadlock_reports(self) -> list[str]:
        """PostgreSQL's "deadlock detected" lines in every cluster's log (pg_stat_database
        does not survive a crash restart or a failover; the log does)."""
        found = []
        for pg in [self.pg, *self.extra_clusters]:
            lines = pg.log_text().splitlines()
            for i, line in enumerate(lines):
                if "deadlock detected" in line:
                    # The report and the statements of both sides, for the message.
                    found.append("\n".join(lines[i : i + 12]))
        return found

    def logs(self) -> str:
        return logs_of(self.nodes) + f"\n--- postgres.log\n{self.pg.log_text()[-3000:]}"

    def close(self, keep_logs: Path | None = None) -> None:
        for node in self.nodes:
            node.cleanup()
        if keep_logs is not None:  # for the report of a failed run: the root is removed
            keep_logs.mkdir(parents=True, exist_ok=True)
            for log in [*self.root.glob("*.log"), self.pg.log, self.ledger.path]:
                if log.exists():
                    shutil.copy(log, keep_logs / log.name)
        self.ledger.kill_leftovers()
        for pg in [*self.extra_clusters, self.pg]:
            pg.destroy()


# --- what must hold between the ledger and the database -------------------------------------

RETRIED_AFTER = frozenset({RunState.LOST, RunState.FAILED, RunState.TIMED_OUT})
_FIRST_LINES = ("start", "run")


def slot_key(row: Execution) -> tuple[str, datetime]:
    return (row.job_name or str(row.id), row.scheduled_for)


def problems(found: list[str], limit: int = 12) -> str:
    more = f"\n... and {len(found) - limit} more" if len(found) > limit else ""
    return f"{len(found)} problems:\n" + "\n".join(found[:limit]) + more


def at_most_once(ledger: Ledger, rows: Iterable[Execution]) -> list[str]:
    """Each execution's command started at most once, and so each (job, slot, attempt)."""
    by_id = {str(r.id): r for r in rows}
    starts: dict[tuple[str, datetime, int], list[Entry]] = {}
    for e in ledger.entries():
        if e.kind in _FIRST_LINES:
            row = by_id.get(e.run_id)
            if row is None:
                starts.setdefault((e.job, datetime.min, -1), []).append(e)
                continue
            starts.setdefault((*slot_key(row), row.attempt), []).append(e)
    found = []
    for (job, slot, attempt), entries in starts.items():
        if attempt == -1:
            found.append(
                f"{job}: runs not in the database: "
                + ", ".join(f"{e.run_id} ({e.kind} on {e.node} at {e.at:.3f})" for e in entries)
            )
        elif len(entries) > 1:
            found.append(
                f"{job} slot {slot:%H:%M:%S.%f} attempt {attempt} started {len(entries)}x "
                f"(pids {[e.pid for e in entries]}, runs {sorted({e.run_id for e in entries})})"
            )
    return found


def retries_follow_loss(rows: Iterable[Execution]) -> list[str]:
    """Every attempt > 1 follows an attempt recorded lost, failed or timed out."""
    rows = list(rows)
    by_attempt = {(*slot_key(r), r.attempt): r for r in rows}
    found = []
    for r in rows:
        if r.attempt > 1:
            before = by_attempt.get((*slot_key(r), r.attempt - 1))
            if before is None or before.state not in RETRIED_AFTER:
                state = "missing" if before is None else f"{before.state}: {before.reason}"
                found.append(f"{r.job_name} {r.scheduled_for:%H:%M:%S} attempt {r.attempt} "
                             f"follows attempt {r.attempt - 1} {state}")  # fmt: skip
    return found


def dead_before_retry(ledger: Ledger, rows: Iterable[Execution]) -> list[str]:
    """Every line an attempt's process tree wrote comes before the next attempt's first."""
    rows = list(rows)
    lines = ledger.by_run()
    by_attempt = {(*slot_key(r), r.attempt): r for r in rows}
    found = []
    for r in rows:
        before = by_attempt.get((*slot_key(r), r.attempt - 1))
        if before is None or str(r.id) not in lines or str(before.id) not in lines:
            continue
        old_last = max(e.at for e in lines[str(before.id)])
        new_first = min(e.at for e in lines[str(r.id)])
        if old_last >= new_first:
            found.append(
                f"{r.job_name} {r.scheduled_for:%H:%M:%S}: attempt {before.attempt} still "
                f"wrote {old_last - new_first:.2f}s after attempt {r.attempt} started"
            )
    return found


def environment_matches(
    ledger: Ledger, rows: Iterable[Execution], node_names: dict[UUID, str]
) -> list[str]:
    """The run's CRONHIVE_* variables say what the database recorded; fences grow."""
    by_id = {str(r.id): r for r in rows}
    fences: dict[tuple[str, datetime], list[tuple[int, int]]] = {}
    found = []
    for e in ledger.entries():
        row = by_id.get(e.run_id)
        if e.kind not in _FIRST_LINES or row is None:
            continue
        if not (e.slot and e.attempt and e.node and e.fence.isdigit()):
            found.append(f"run {e.run_id}: CRONHIVE_SLOT/ATTEMPT/NODE/FENCE not all set "
                         f"({e.slot!r}, {e.attempt!r}, {e.node!r}, {e.fence!r})")  # fmt: skip
            continue
        if datetime.fromisoformat(e.slot) != row.scheduled_for:
            found.append(f"run {e.run_id}: CRONHIVE_SLOT {e.slot} != {row.scheduled_for}")
        if e.attempt != str(row.attempt):
            found.append(f"run {e.run_id}: CRONHIVE_ATTEMPT {e.attempt} != {row.attempt}")
        name = node_names.get(row.node_id) if row.node_id else None
        if name is not None and e.node != name:
            found.append(f"run {e.run_id}: CRONHIVE_NODE {e.node} != {name}")
        fences.setdefault(slot_key(row), []).append((row.attempt, int(e.fence)))
    for key, seen in fences.items():
        tokens = [fence for _, fence in sorted(seen)]
        if tokens != sorted(set(tokens)):
            found.append(f"{key[0]} {key[1]:%H:%M:%S}: fences {tokens} do not increase")
    return found


def first_attempts(
    rows: Iterable[Execution], first: datetime, last: datetime
) -> dict[datetime, int]:
    """How many first attempts each every-second slot from `first` to `last` has."""
    fired: dict[datetime, int] = {}
    t = first
    while t <= last:
        fired[t] = 0
        t += timedelta(seconds=1)
    for r in rows:
        if r.attempt == 1 and r.scheduled_for in fired:
            fired[r.scheduled_for] += 1
    return fired


def slot_gaps(rows: Iterable[Execution], first: datetime, last: datetime) -> list[str]:
    """Every-second slots from `first` to `last` with no first attempt, or doubled."""
    return [
        f"slot {t:%H:%M:%S}: {n} first attempts"
        for t, n in first_attempts(rows, first, last).items()
        if n != 1
    ]


class NodeWatch:
    """Samples the `nodes` table in the background: every id each name registered under
    (a node that re-registers got fenced), for mapping run rows to node names."""

    def __init__(self, store: Store, every: float = 0.3) -> None:
        self._store = store
        self._every = every
        self.names: dict[UUID, str] = {}
        self.errors = 0
        self._task: asyncio.Task[None] | None = None

    def ids_of(self, name: str) -> list[UUID]:
        return [i for i, n in self.names.items() if n == name]

    async def sample(self) -> None:
        try:
            for n in await self._store.list_nodes(now=datetime.now(UTC)):
                self.names.setdefault(n.id, n.name)
        except Exception:  # the database may be down on purpose
            self.errors += 1

    async def _loop(self) -> None:
        while True:
            await self.sample()
            await asyncio.sleep(self._every)

    def __enter__(self) -> NodeWatch:
        self._task = asyncio.create_task(self._loop())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()


def slot_at_or_after(anchor: datetime, t: datetime, every: float = 1.0) -> datetime:
    """The first slot of an every-`every`-seconds schedule through `anchor` that is >= t."""
    steps = max(0, -(-(t - anchor).total_seconds() // every))
    return anchor + timedelta(seconds=steps * every)


# --- jobs the outage tests share ------------------------------------------------------


async def printing_jobs(chaos: Chaos, n: int, lines: int, every: float) -> list[Job]:
    jobs = [
        await chaos.create_job(chaos.ledger.printing(lines, every), name=f"print-{i}")
        for i in range(n)
    ]
    for job in jobs:
        await chaos.trigger(job)
    return jobs


async def wait_printed(store: Store, jobs: list[Job], within: float) -> None:
    async def over() -> bool:
        rows = [r for j in jobs for r in await executions(store, j.id)]
        return bool(rows) and all(r.state.terminal for r in rows)

    await wait_for(over, within=within, what="the printing runs ended")


async def printed_wrong(store: Store, jobs: list[Job], lines: int) -> list[str]:
    """Each printing job ran once, succeeded, and every byte of it is stored exactly once."""
    found = []
    for job in jobs:
        rows = await executions(store, job.id)
        if len(rows) != 1:
            found.append(f"{job.name}: {[(r.attempt, str(r.state), r.reason) for r in rows]}")
            continue
        [run] = rows
        if run.state is not RunState.SUCCEEDED or run.exit_code != 0:
            found.append(f"{job.name}: {run.state} exit {run.exit_code} ({run.reason})")
        want = expected_output(str(run.id), lines)
        try:
            got = await stored_output(store, run.id)
        except AssertionError as exc:
            found.append(str(exc))
            continue
        if got != want:
            found.append(f"{job.name}: stored {len(got)} of {len(want)} bytes, differing")
        if run.stdout_bytes != len(want):
            found.append(f"{job.name}: stdout_bytes {run.stdout_bytes} != {len(want)}")
    return found


def skipped_outside(rows: list[Execution], outages: list[tuple[float, float]]) -> list[str]:
    """Slots recorded skipped other than within an outage plus a second."""
    found = []
    for r in rows:
        if r.state is RunState.SKIPPED and not any(
            utc(down) - timedelta(seconds=1) <= r.scheduled_for <= utc(up) + timedelta(seconds=1)
            for down, up in outages
        ):
            found.append(f"{r.job_name} {r.scheduled_for:%H:%M:%S} skipped: {r.reason}")
    return found


async def quick_jobs(chaos: Chaos, n: int) -> list[Job]:
    first = datetime.now(UTC) + timedelta(seconds=2)
    return [
        await chaos.create_job(
            chaos.ledger.quick(), name=f"q{i:02}", schedule="every 1s", first_at=first
        )
        for i in range(n)
    ]


async def slot_problems(store: Store, jobs: list[Job], until: datetime) -> list[str]:
    found = []
    for job in jobs:
        assert job.next_fire_at is not None
        rows = await executions(store, job.id)
        found += [f"{job.name} {p}" for p in slot_gaps(rows, job.next_fire_at, until)]
    return found
