"""Engine benchmarks: throughput, fire lag, tick cost and memory at scale, failover.

Run: ``.venv/bin/python bench/engine_bench.py [--quick] [--only throughput,lag,tick,failover]``

Needs PostgreSQL at 127.0.0.1:5432 (user postgres, trust; override with
CRONHIVE_BENCH_PG=<admin URL>); it creates its own databases and drops them.

1. throughput: N ad-hoc `/bin/true` runs enqueued in batches of 500 (bulk INSERT + one
   `runs` notification per batch); runs/s from the first enqueue until all are terminal.
   SQLite: one node in this process. PostgreSQL: two `cronhive server` processes.
   Compared with raw asyncio spawn-and-wait at the same concurrency, in the same run.
2. lag: see _firelag.py (cronhive on SQLite and PostgreSQL, APScheduler 3 beside it).
3. tick: `Scheduler.tick()` with 5 due jobs among 1,000 and among 1,000,000 registered
   ones (PostgreSQL, bulk INSERT ... SELECT), and a node process's RSS at each size.
4. failover: SIGKILL the node running `sleep 20` (one retry, no delay); seconds until
   the retry is running on the other node (its `started_at` minus the kill).

The table's ratio is measured/target for "more is better" and target/measured for
"less is better": >= 1 means the target is met.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import _ebkit as kit
import _firelag as firelag
import sqlalchemy as sa

from cronhive.engine import executions as new
from cronhive.engine.clock import SystemClock
from cronhive.engine.node import NodeProcess
from cronhive.engine.scheduler import Scheduler
from cronhive.model import Execution, RetryPolicy, RunSpec, RunState
from cronhive.store.schema import jobs
from cronhive.store.sql import SqlStore

CAPACITY = 32  # per node; raw spawning runs at the same concurrency


@dataclass(frozen=True, kw_only=True)
class Row:
    name: str
    target: str
    measured: str
    ratio: float | None = None


# --- 1. throughput -----------------------------------------------------------------


async def sqlite_rate(workdir: Path, n: int) -> tuple[float, int]:
    async with kit.opened(f"sqlite:///{workdir / 'tp.db'}") as store:
        node = NodeProcess(store, kit.node_config("tp", workdir / "tp", CAPACITY, store))
        task = asyncio.create_task(node.run())
        await asyncio.wait_for(node.ready.wait(), 30)
        try:
            t0 = time.monotonic()
            await kit.enqueue_adhoc(store, ("/bin/true",), n, 500)
            t1 = await kit.wait_terminal(store, n, within=n / 20 + 60)
            ok = await kit.count_state(store, RunState.SUCCEEDED)
        finally:
            node.shutdown()
            await asyncio.wait_for(task, 60)
    return n / (t1 - t0), ok


async def pg_rate(workdir: Path, n: int) -> tuple[float, int]:
    with kit.pg_database() as url:
        async with kit.opened(url) as store:
            procs = [kit.spawn_node(url, workdir, f"tp{i}", capacity=CAPACITY) for i in (1, 2)]
            try:
                await kit.wait_nodes(store, {"tp1", "tp2"})
                t0 = time.monotonic()
                await kit.enqueue_adhoc(store, ("/bin/true",), n, 500)
                t1 = await kit.wait_terminal(store, n, within=n / 20 + 60)
                ok = await kit.count_state(store, RunState.SUCCEEDED)
            finally:
                for p in procs:
                    kit.stop_node(p)
    return n / (t1 - t0), ok


async def throughput(workdir: Path, n: int) -> list[Row]:
    await kit.raw_rate(200, CAPACITY)  # warm up
    raw = max([await kit.raw_rate(n, CAPACITY) for _ in range(2)])
    lite, lite_ok = await sqlite_rate(workdir, n)
    pg, pg_ok = await pg_rate(workdir, n)
    raw2 = await kit.raw_rate(n, CAPACITY)  # the machine may drift during the run
    raw = max(raw, raw2)
    print(
        f"  raw spawn+wait {raw:.0f}/s; sqlite {lite:.0f}/s ({lite_ok} ok); "
        f"pg {pg:.0f}/s ({pg_ok} ok)"
    )
    return [
        Row(
            name=f"raw asyncio spawn+wait ({CAPACITY} at once)",
            target="-",
            measured=f"{raw:.0f} runs/s",
        ),
        Row(
            name=f"end-to-end, SQLite, 1 node ({n} runs)",
            target=">= 0.5 x raw",
            measured=f"{lite:.0f} runs/s = {lite / raw:.2f} x raw",
            ratio=lite / raw / 0.5,
        ),
        Row(
            name=f"end-to-end, PostgreSQL, 2 nodes ({n} runs)",
            target=">= 0.5 x raw",
            measured=f"{pg:.0f} runs/s = {pg / raw:.2f} x raw",
            ratio=pg / raw / 0.5,
        ),
    ]


# --- 2. fire lag -------------------------------------------------------------------


def _lag_rows(label: str, lag: firelag.Lag, target_ms: float = 50) -> list[Row]:
    out = []
    if lag.claim_ms:
        out.append(
            Row(
                name=f"fire lag {label}, claim (started_at) p50/p99",
                target="-",
                measured=f"{kit.pct(lag.claim_ms, 0.5):.1f} / {kit.pct(lag.claim_ms, 0.99):.1f} ms",
            )
        )
    p99 = kit.pct(lag.child_ms, 0.99)
    out.append(
        Row(
            name=f"fire lag {label}, child start p50/p99 ({lag.fired}/{lag.expected} fired)",
            target=f"p99 <= {target_ms:g} ms",
            measured=f"{kit.pct(lag.child_ms, 0.5):.1f} / {p99:.1f} ms",
            ratio=target_ms / p99 if p99 > 0 else None,
        )
    )
    return out


async def lag(workdir: Path, seconds: float) -> list[Row]:
    lite = await firelag.cronhive_sqlite(workdir, seconds)
    pg = await firelag.cronhive_pg(workdir, seconds)
    aps = await firelag.apscheduler(seconds)
    lite_spread = await firelag.cronhive_sqlite(workdir, seconds, spread=True)
    pg_spread = await firelag.cronhive_pg(workdir, seconds, spread=True)
    return (
        _lag_rows("cronhive SQLite", lite)
        + _lag_rows("cronhive PostgreSQL", pg)
        + _lag_rows("APScheduler 3", aps)
        + _lag_rows("cronhive SQLite, spread (offset H)", lite_spread, target_ms=10)
        + _lag_rows("cronhive PostgreSQL, spread (offset H)", pg_spread, target_ms=10)
    )


# --- 3. tick cost and RSS at scale -------------------------------------------------


async def _tick_ms(store: SqlStore, total: int, ticks: int) -> tuple[float, float]:
    """Median of `ticks` ticks with 5 due jobs, and of `next_fire_at()`, in ms."""
    sched = Scheduler(store, SystemClock(), None, uuid.uuid4())
    tick, upcoming = [], []
    for k in range(ticks + 3):
        names = [f"bulk-{(k * 7919 + j * 104729) % total + 1}" for j in range(5)]
        async with store._writer.begin() as conn:
            await conn.execute(
                jobs.update()
                .where(jobs.c.name.in_(names))
                .values(next_fire_at=kit.now() - timedelta(seconds=1))
            )
        t0 = time.perf_counter()
        fired = await sched.tick()
        t1 = time.perf_counter()
        await store.next_fire_at()
        t2 = time.perf_counter()
        assert fired == 5, fired
        if k >= 3:
            tick.append((t1 - t0) * 1000)
            upcoming.append((t2 - t1) * 1000)
    return kit.pct(tick, 0.5), kit.pct(upcoming, 0.5)


async def tick_scale(workdir: Path, big: int, ticks: int) -> list[Row]:
    small = 1000
    with kit.pg_database() as url:
        async with kit.opened(url) as store:
            spec, first = kit.job("bulk-template", ("/bin/true",), kit.far_daily())
            await kit.insert_jobs(store, [(spec, first)])
            await kit.clone_jobs_pg(url, "bulk-template", small, "bulk")
            t_small, n_small = await _tick_ms(store, small, ticks)
        rss_small = await kit.node_rss(url, workdir, "rss-small")
        t0 = time.monotonic()
        async with kit.opened(url) as store:
            await kit.clone_jobs_pg(url, "bulk-template", big - small, "bulkx")
            load = time.monotonic() - t0
            async with store._reader.connect() as conn:
                count = (
                    await conn.execute(sa.select(sa.func.count()).select_from(jobs))
                ).scalar_one()
            t_big, n_big = await _tick_ms(store, small, ticks)
        rss_big = await kit.node_rss(url, workdir, "rss-big")
    print(f"  {count} jobs loaded in {load:.1f}s; next_fire_at() {n_small:.2f} -> {n_big:.2f} ms")
    return [
        Row(
            name=f"tick, 5 due of {small:,} jobs (median)", target="-", measured=f"{t_small:.1f} ms"
        ),
        Row(
            name=f"tick, 5 due of {count:,} jobs (median)",
            target="<= 2 x the 1k tick",
            measured=f"{t_big:.1f} ms = {t_big / t_small:.2f} x",
            ratio=2 * t_small / t_big,
        ),
        Row(
            name=f"node RSS (now / peak), {small:,} jobs",
            target="<= 200 MB",
            measured=f"{rss_small[0]:.0f} / {rss_small[1]:.0f} MB",
            ratio=200 / rss_small[1],
        ),
        Row(
            name=f"node RSS (now / peak), {count:,} jobs",
            target="<= 200 MB",
            measured=f"{rss_big[0]:.0f} / {rss_big[1]:.0f} MB",
            ratio=200 / rss_big[1],
        ),
    ]


# --- 4. failover -------------------------------------------------------------------


async def failover(workdir: Path, trials: int) -> list[Row]:
    times: list[float] = []
    with kit.pg_database() as url:
        async with kit.opened(url) as store:
            procs = {f"fo{i}": kit.spawn_node(url, workdir, f"fo{i}", capacity=4) for i in (1, 2)}
            try:
                for k in range(trials):
                    ids = await kit.wait_nodes(store, set(procs))
                    run = RunSpec(command=("sleep", "20"))
                    # Default settings: no retries, then --retries 2 (delay 10 s): a lost
                    # run is retried at once either way (a dead node is not its failure).
                    policy = RetryPolicy() if k % 2 == 0 else RetryPolicy(max_retries=2)
                    ex = new.adhoc("user:bench", run, kit.now(), retry=policy)
                    await store.enqueue(ex)
                    while (
                        got := await store.get_execution(ex.id, visible_to=None)
                    ).node_id is None:
                        await asyncio.sleep(0.02)
                    victim = next(n for n, i in ids.items() if i == got.node_id)
                    await asyncio.sleep(0.2 + 0.6 * k)  # kill at different points of the lease
                    procs[victim].kill()
                    killed = kit.now()
                    procs[victim].wait()
                    retry = await _wait_retry(store, ex.id)
                    times.append((retry.started_at - killed).total_seconds())  # type: ignore[operator]
                    await store.request_stop(
                        retry.id, visible_to=None, reason="bench", now=kit.now()
                    )
                    procs[victim] = kit.spawn_node(url, workdir, f"{victim}", capacity=4)
            finally:
                for p in procs.values():
                    kit.stop_node(p)
    worst = max(times)
    print("  failover seconds per trial: " + ", ".join(f"{t:.2f}" for t in times))
    return [
        Row(
            name=f"failover, SIGKILL -> retry running elsewhere (max of {trials})",
            target="<= 6 s (TTL + 1 s)",
            measured=f"{worst:.2f} s (median {kit.pct(times, 0.5):.2f})",
            ratio=6 / worst,
        )
    ]


async def _wait_retry(store: SqlStore, first: uuid.UUID) -> Execution:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for ex in await store.list_executions(visible_to=None, states=[RunState.RUNNING]):
            if ex.id != first and ex.owner == "user:bench" and ex.attempt == 2:
                return ex
        await asyncio.sleep(0.02)
    raise TimeoutError("the retry never ran")


# --- main --------------------------------------------------------------------------


def table(rows: list[Row]) -> str:
    w = max(len(r.name) for r in rows)
    lines = [f"{'measure':<{w}}  {'target':<20} {'measured':<32} ratio"]
    for r in rows:
        ratio = "" if r.ratio is None else f"{r.ratio:.2f}"
        lines.append(f"{r.name:<{w}}  {r.target:<20} {r.measured:<32} {ratio}")
    return "\n".join(lines)


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="small numbers: a smoke check")
    ap.add_argument("--only", default="throughput,lag,tick,failover")
    args = ap.parse_args()
    only = set(args.only.split(","))
    q = args.quick
    print(
        f"cronhive engine bench ({'quick' if q else 'full'}): nproc {os.cpu_count()}, "
        f"Python {platform.python_version()}, {time.strftime('%Y-%m-%d %H:%M %Z')}"
    )
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="cronhive-bench-") as tmp:
        workdir = Path(tmp)
        if "throughput" in only:
            print("throughput ...", flush=True)
            rows += await throughput(workdir, 500 if q else 5000)
        if "lag" in only:
            print("fire lag ...", flush=True)
            rows += await lag(workdir, 5 if q else 25)
        if "tick" in only:
            print("tick cost and RSS ...", flush=True)
            rows += await tick_scale(workdir, 20_000 if q else 1_000_000, 10 if q else 50)
        if "failover" in only:
            print("failover ...", flush=True)
            rows += await failover(workdir, 1 if q else 5)
    print()
    print(table(rows))


if __name__ == "__main__":
    asyncio.run(main())
