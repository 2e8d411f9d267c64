"""Issue 17's targets in one run, side by side, as one markdown table.

Run: ``.venv/bin/python bench/targets_bench.py [--quick] [--only 1,2,3,4,5]
[--isolation bwrap,none]``. It measures the tree `cronhive` is imported from
(``PYTHONPATH=<tree>/src``) and prints that tree's commit. Needs PostgreSQL at
127.0.0.1:5432 (or CRONHIVE_BENCH_PG=<admin URL>); it makes its own databases and drops
them. Every cronhive figure is of real `cronhive server` processes, labelled with their
isolation (`bwrap`, the shipped default, and `none`). As root, bwrap runs are `nobody`.

1. End-to-end `/bin/true` runs/s: N ad-hoc runs queued, then the nodes start; runs/s from
   the first claim to the last end (the database's timestamps). SQLite: 1 node,
   capacity 32; PostgreSQL: 2 nodes, capacity 16 each. Reference: raw asyncio
   spawn+wait, 32 at once (the best of the runs before and after). Target >= 0.7x raw.
2. Burst of 100 jobs on one slot (`every Ps`), child start p99 over all rounds' children.
   References: APScheduler 3 AsyncIOScheduler with the memory job store and with its
   SQLAlchemy job store on SQLite; raw asyncio (100 at once). Target <= APScheduler's
   memory p99. See _burst.py for slots, warm-up and how lags are taken.
3. Burst of 1,000 on one slot: the last child's start minus the slot (median of the
   rounds, worst beside it); capacity 1,000 per node, so capacity never waits.
   References: raw asyncio and C `posix_spawn` (spawnloop.c), 1,000 at once. Target
   <= 1.5x raw asyncio. Every slot must fire once: the counts are printed.
4. 100 jobs `every 1s offset H` among 10,000 (see _firelag.py), child start p99.
   Target <= 10 ms.
5. Idle node RSS (rss_bench.py). Target <= 60 MB.

Ratio: cronhive ÷ the reference (rows 1-3) or ÷ the target (rows 4-5); met: the
target holds.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import _burst as burst
import _ebkit as kit
import _firelag as firelag
import rss_bench
import sqlalchemy as sa

import cronhive
from cronhive.model import RunState
from cronhive.runner import Sandbox
from cronhive.store.schema import executions
from cronhive.store.sql import SqlStore

BACKENDS = ("sqlite", "pg")
LABEL = {"sqlite": "SQLite 1 node", "pg": "PostgreSQL 2 nodes"}
THROUGHPUT_CONCURRENCY = 32  # raw asyncio; cronhive: 1 x 32 (SQLite), 2 x 16 (PG)
BURST_CAPACITY = 1000  # per node: never what a burst waits for


@dataclass(frozen=True, kw_only=True)
class Row:
    measure: str
    target: str = "-"
    figure: str = "-"
    reference: str = "-"
    ratio: float | None = None
    met: bool | None = None


@dataclass(frozen=True, kw_only=True)
class Plan:
    quick: bool
    isolations: tuple[str, ...]
    workdir: Path

    def nodes(self, backend: str) -> int:
        return 1 if backend == "sqlite" else 2


def _ms(value: float) -> str:
    return f"{value:,.0f} ms" if value >= 100 else f"{value:.1f} ms"


# --- 1. end-to-end throughput ------------------------------------------------------


async def _span(store: SqlStore) -> float:
    """Seconds from the first claim to the last recorded end."""
    e = executions.c
    async with store._reader.connect() as conn:
        first, last = (
            await conn.execute(sa.select(sa.func.min(e.started_at), sa.func.max(e.finished_at)))
        ).one()
    return float((last - first).total_seconds())


async def _cronhive_rate(plan: Plan, backend: str, n: int, isolation: str) -> tuple[float, int]:
    async def setup(store: SqlStore) -> None:
        await kit.enqueue_adhoc(store, ("/bin/true",), n, 500)

    nodes = plan.nodes(backend)
    capacity = THROUGHPUT_CONCURRENCY // nodes
    async with kit.cluster(
        backend, plan.workdir, nodes=nodes, capacity=capacity, isolation=isolation, setup=setup
    ) as c:
        await kit.wait_terminal(c.store, n, within=n / 10 + 60, poll=0.25)
        ok = await kit.count_state(c.store, RunState.SUCCEEDED)
        return n / await _span(c.store), ok


async def throughput(plan: Plan) -> list[Row]:
    n = 500 if plan.quick else 5000
    c = THROUGHPUT_CONCURRENCY
    await kit.raw_rate(200, c)  # warm up
    raws = [await kit.raw_rate(n, c)]
    got = {
        (b, iso): await _cronhive_rate(plan, b, n, iso) for b in BACKENDS for iso in plan.isolations
    }
    raws.append(await kit.raw_rate(n, c))  # the machine may drift during the run
    raw = max(raws)
    reference = f"raw asyncio, {c} at once: {raw:,.0f}/s"
    return [
        Row(
            measure=f"end-to-end `/bin/true` runs/s, {LABEL[b]} x capacity "
            f"{c // plan.nodes(b)}, {iso} ({n:,} runs)",
            target=">= 0.7x raw",
            figure=f"{rate:,.0f}/s ({ok:,} ok)",
            reference=reference,
            ratio=rate / raw,
            met=rate / raw >= 0.7 and ok == n,
        )
        for (b, iso), (rate, ok) in got.items()
    ]


# --- 2. and 3. bursts --------------------------------------------------------------


def _burst_figure(b: burst.Burst, last: bool) -> str:
    if last:
        lasts = b.last_ms()
        text = f"last {_ms(kit.pct(lasts, 0.5))} (worst {_ms(max(lasts))})"
    else:
        text = f"p99 {_ms(kit.pct(b.all_ms(), 0.99))}"
    notes = "".join(f"; {n}" for n in b.notes)
    return f"{text}, {b.counts()}{notes}"


async def _cronhive_bursts(plan: Plan, shape: burst.Shape) -> dict[tuple[str, str], burst.Burst]:
    return {
        (b, iso): await burst.cronhive(
            b,
            plan.workdir,
            shape,
            nodes=plan.nodes(b),
            capacity=BURST_CAPACITY,
            isolation=iso,
        )
        for b in BACKENDS
        for iso in plan.isolations
    }


def _shape(plan: Plan, jobs: int, quick: tuple[float, int], full: tuple[float, int]) -> burst.Shape:
    period, rounds = quick if plan.quick else full
    return burst.Shape(jobs=jobs, period=period, rounds=rounds, warmup=0 if plan.quick else 1)


async def burst100(plan: Plan) -> list[Row]:
    shape = _shape(plan, 100, quick=(4.0, 1), full=(6.0, 5))
    got = await _cronhive_bursts(plan, shape)
    w = plan.workdir
    mem = await burst.apscheduler(w, shape, store="memory")
    lite = await burst.apscheduler(w, shape, store="sqlite")
    raw = await burst.raw_asyncio(w, shape, concurrency=shape.jobs)
    ref = kit.pct(mem.all_ms(), 0.99)
    what = (
        f"burst of {shape.jobs} on one slot ({shape.rounds} rounds, every {shape.period:g}s), "
        "child start"
    )
    rows = [
        Row(
            measure=f"{what}, {LABEL[backend]}, {iso}",
            target="p99 <= APScheduler 3 memory's",
            figure=_burst_figure(b, last=False),
            reference=f"APScheduler 3 memory: p99 {_ms(ref)}",
            ratio=kit.pct(b.all_ms(), 0.99) / ref,
            met=kit.pct(b.all_ms(), 0.99) <= ref and b.started == b.expected and not b.twice,
        )
        for (backend, iso), b in got.items()
    ]
    for name, ref_burst in (
        ("APScheduler 3 AsyncIOScheduler, memory job store", mem),
        ("APScheduler 3 AsyncIOScheduler, SQLAlchemy job store on SQLite", lite),
        (f"raw asyncio, {shape.jobs} create_subprocess_exec at once", raw),
    ):
        rows.append(Row(measure=f"{what}, {name}", reference=_burst_figure(ref_burst, last=False)))
    return rows


async def burst1000(plan: Plan) -> list[Row]:
    shape = _shape(plan, 200 if plan.quick else 1000, quick=(5.0, 1), full=(20.0, 3))
    jobs = shape.jobs
    got = await _cronhive_bursts(plan, shape)
    w = plan.workdir
    quicker = dataclasses.replace(shape, period=min(shape.period, 5.0))  # they end sooner
    raw = await burst.raw_asyncio(w, quicker, concurrency=jobs)
    ref = kit.pct(raw.last_ms(), 0.5)
    what = (
        f"burst of {jobs:,} on one slot ({shape.rounds} rounds, every {shape.period:g}s), "
        "last child"
    )
    rows = [
        Row(
            measure=f"{what}, {LABEL[backend]}, {iso} (capacity {BURST_CAPACITY:,} per node)",
            target="<= 1.5x raw asyncio",
            figure=_burst_figure(b, last=True),
            reference=f"raw asyncio: last {_ms(ref)}",
            ratio=kit.pct(b.last_ms(), 0.5) / ref,
            met=kit.pct(b.last_ms(), 0.5) <= 1.5 * ref and b.started == b.expected and not b.twice,
        )
        for (backend, iso), b in got.items()
    ]
    rows.append(
        Row(
            measure=f"{what}, raw asyncio, {jobs:,} at once",
            reference=_burst_figure(raw, last=True),
        )
    )
    with tempfile.TemporaryDirectory(prefix="cronhive-cc-") as tmp:
        binary = burst.compile_spawnloop(Path(tmp))
        if binary is None:
            rows.append(Row(measure=f"{what}, C posix_spawn loop", reference="skipped: no cc"))
        else:
            c = await burst.c_spawn(binary, w, quicker, concurrency=jobs)
            rows.append(
                Row(
                    measure=f"{what}, C posix_spawn+waitpid loop, {jobs:,} at once",
                    reference=_burst_figure(c, last=True),
                )
            )
    return rows


# --- 4. spread, 5. idle RSS --------------------------------------------------------


async def spread(plan: Plan) -> list[Row]:
    seconds = 3 if plan.quick else 20
    rows = []
    for backend in BACKENDS:
        for iso in plan.isolations:
            lag = await firelag.cronhive_lag(
                backend,
                plan.workdir,
                seconds,
                spread=True,
                isolation=iso,
                nodes=plan.nodes(backend),
            )
            p99 = kit.pct(lag.child_ms, 0.99)
            rows.append(
                Row(
                    measure=f"100 jobs `every 1s offset H` among 10,000 ({seconds} s), "
                    f"child start, {LABEL[backend]}, {iso}",
                    target="p99 <= 10 ms",
                    figure=f"p99 {_ms(p99)} (p50 {_ms(kit.pct(lag.child_ms, 0.5))}), "
                    f"{len(lag.child_ms)}/{lag.expected} started",
                    ratio=p99 / 10,
                    met=p99 <= 10 and len(lag.child_ms) == lag.expected,
                )
            )
    return rows


async def idle(plan: Plan) -> list[Row]:
    return [
        Row(
            measure=f"idle node RSS, {name}, shipped default isolation",
            target="<= 60 MB",
            figure=f"{now:.0f} MB (peak {peak:.0f} MB)",
            ratio=now / 60,
            met=now <= 60,
        )
        for name, (now, peak) in await rss_bench.idle_rss(plan.workdir)
    ]


# --- main --------------------------------------------------------------------------

MEASURES = {"1": throughput, "2": burst100, "3": burst1000, "4": spread, "5": idle}


def _run(*argv: str) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=False).stdout.strip()


def header() -> list[str]:
    tree = Path(cronhive.__file__).resolve().parents[2]
    commit = _run("git", "-C", str(tree), "rev-parse", "--short", "HEAD") or "unknown"
    if _run("git", "-C", str(tree), "status", "--porcelain", "--untracked-files=no"):
        commit += " + uncommitted changes"
    probe = Sandbox.probe()
    bwrap = (
        f"used ({_run(probe.bwrap, '--version')}; runs as {probe.run_user} under root)"
        if probe.unavailable is None
        else f"unavailable: {probe.unavailable}"
    )
    return [
        f"cronhive {commit} ({tree}), {time.strftime('%Y-%m-%d %H:%M %Z')}",
        f"nproc {os.cpu_count()}, Python {platform.python_version()}, bubblewrap {bwrap}",
    ]


def table(rows: Sequence[Row]) -> list[str]:
    out = [
        "| measure | target | cronhive figure | reference figure | ratio | met |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        ratio = "-" if r.ratio is None else f"{r.ratio:.2f}"
        met = "-" if r.met is None else ("yes" if r.met else "**no**")
        out.append(f"| {r.measure} | {r.target} | {r.figure} | {r.reference} | {ratio} | {met} |")
    return out


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    ap.add_argument("--quick", action="store_true", help="small numbers: a smoke check")
    ap.add_argument("--only", default="1,2,3,4,5", help="rows, e.g. 2,3")
    ap.add_argument("--isolation", help="bwrap, none or bwrap,none [bwrap,none; --quick: bwrap]")
    args = ap.parse_args()
    only = [m for m in args.only.split(",") if m]
    if unknown := set(only) - set(MEASURES):
        ap.error(f"unknown rows {sorted(unknown)}: pick from 1-5")
    chosen = args.isolation or ("bwrap" if args.quick else "bwrap,none")
    isolations = tuple(i for i in chosen.split(",") if i)
    if not isolations or set(isolations) - {"bwrap", "none"}:
        ap.error("--isolation: bwrap, none or bwrap,none")
    if Sandbox.probe().unavailable is not None and "bwrap" in isolations:
        print("bubblewrap unavailable: the bwrap rows are skipped")
        isolations = tuple(i for i in isolations if i != "bwrap")
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    lines = header()
    lines.append(f"load before: {_run('uptime')}")
    print("\n".join(lines), flush=True)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="cronhive-targets-") as tmp:
        plan = Plan(quick=args.quick, isolations=isolations, workdir=Path(tmp))
        for key in only:
            t0 = time.monotonic()
            print(f"row {key}: {MEASURES[key].__name__} ...", flush=True)
            rows += await MEASURES[key](plan)
            print(f"  ({time.monotonic() - t0:.0f} s)", flush=True)
    lines.append(f"load after: {_run('uptime')}")
    print("\n" + "\n".join([*lines, "", *table(rows)]))


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except (KeyboardInterrupt, asyncio.CancelledError):
        sys.exit("interrupted: nodes stopped, databases dropped")
