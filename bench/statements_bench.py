"""Database work per run: SQL statements and commits a node spends on each run.

Run: ``.venv/bin/python bench/statements_bench.py [--runs 500]``

A count, not a time: the same on a quiet and on a loaded machine, so it shows what a
change to the hot path saves even where timings are noise. One node in this process,
on SQLite and on PostgreSQL, runs

- ad hoc: N queued ``sh -c 'echo hi'`` (one line of output each), counted from the first
  enqueue until the last run is recorded (part of it is the bench polling for the end:
  the ``count(*)`` lines);
- scheduled: 100 jobs ``every 1s`` running the same, counted over 5 seconds of firing,
  divided by the runs recorded in that time (firing, claiming, ends, job counters).

Every statement on any of the store's connections is counted (SQLAlchemy's
``before_cursor_execute``; an ``executemany`` counts once).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import time
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import _ebkit as kit
import sqlalchemy as sa

from cronhive.engine.node import NodeProcess
from cronhive.store.sql import SqlStore

COMMAND = ("sh", "-c", "echo hi")


def _count(store: SqlStore, counts: collections.Counter[str]) -> None:
    def statement(_c: Any, _cur: Any, text: str, _p: Any, _ctx: Any, _many: bool) -> None:
        counts[" ".join(text.split())[:70]] += 1

    def commit(_c: Any) -> None:
        counts["COMMIT"] += 1

    for engine in dict.fromkeys((store._writer, store._reader, store._lease)):
        sa.event.listen(engine.sync_engine, "before_cursor_execute", statement)
        sa.event.listen(engine.sync_engine, "commit", commit)


async def measure(url: str, workdir: Path, runs: int) -> tuple[collections.Counter[str], float]:
    counts: collections.Counter[str] = collections.Counter()
    async with kit.opened(url) as store:
        node = NodeProcess(store, kit.node_config("st", workdir / "spool", 64, store))
        task = asyncio.create_task(node.run())
        await asyncio.wait_for(node.ready.wait(), 30)
        _count(store, counts)
        began = time.monotonic()
        await kit.enqueue_adhoc(store, COMMAND, runs, 500)
        await kit.wait_terminal(store, runs, within=runs / 5 + 60)
        took = time.monotonic() - began
        node.shutdown()
        await asyncio.wait_for(task, 60)
    return counts, took


async def measure_scheduled(
    url: str, workdir: Path, seconds: float = 5.0
) -> tuple[collections.Counter[str], int]:
    counts: collections.Counter[str] = collections.Counter()
    async with kit.opened(url) as store:
        await kit.insert_jobs(
            store, [kit.job(f"tick-{i}", COMMAND, "every 1s") for i in range(100)]
        )
        node = NodeProcess(store, kit.node_config("sc", workdir / "spool-sc", 128, store))
        task = asyncio.create_task(node.run())
        await asyncio.wait_for(node.ready.wait(), 30)
        await asyncio.sleep(3)  # past the first slots and warm
        before = await kit.count_terminal(store)
        _count(store, counts)
        await asyncio.sleep(seconds)
        runs = await kit.count_terminal(store) - before
        node.shutdown()
        await asyncio.wait_for(task, 60)
    return counts, runs


def report(label: str, counts: collections.Counter[str], runs: int, took: float) -> None:
    commits = counts.pop("COMMIT", 0)
    total = sum(counts.values())
    print(
        f"{label}: {runs} runs in {took:.1f}s; {total / runs:.2f} statements and "
        f"{commits / runs:.2f} commits per run"
    )
    for text, n in counts.most_common(8):
        print(f"  {n / runs:6.3f}/run  {text}")


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=500)
    args = ap.parse_args()
    with TemporaryDirectory() as tmp:
        work = Path(tmp)
        counts, took = await measure(f"sqlite:///{work / 'st.db'}", work, args.runs)
        report("SQLite", counts, args.runs, took)
        with kit.pg_database() as url:
            counts, took = await measure(url, work, args.runs)
        report("PostgreSQL", counts, args.runs, took)
        counts, runs = await measure_scheduled(f"sqlite:///{work / 'sc.db'}", work)
        report("SQLite, scheduled", counts, runs, 5.0)
        with kit.pg_database() as url:
            counts, runs = await measure_scheduled(url, work)
        report("PostgreSQL, scheduled", counts, runs, 5.0)


if __name__ == "__main__":
    asyncio.run(main())
