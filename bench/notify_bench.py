"""What the reactions outbox costs where a run's end is recorded: `finish_many` of job runs.

Run: ``.venv/bin/python bench/notify_bench.py [--runs 200] [--rounds 5]``

For each backend (SQLite file; PostgreSQL, a fresh database): `--runs` jobs, one running
execution each, ended as `failed` by one `finish_many` call (one node recording a
batch of run ends); µs per run ended, median of `--rounds`. Three cases:
- `plain`: jobs without triggers (what every job pays for the outbox: the job row read
  `FOR UPDATE` before its tally);
- `notify`: every job has `failure=ops`, so each end also writes one outbox row.
Run it with PYTHONPATH pointing at a checkout without the outbox for the baseline (the
`notify` case is then skipped).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import _ebkit as kit

from cronhive.engine import executions as new
from cronhive.model import JobSpec, Outcome, RunSpec, RunState
from cronhive.store import Finish
from cronhive.store.sql import SqlStore

HAS_NOTIFY = "notify" in {f.name for f in dataclasses.fields(JobSpec)}


def no_retry(_: object) -> None:
    return None


async def one_round(store: SqlStore, n: int, notify: bool, tag: str) -> float:
    at = kit.now()
    node = await store.register_node(
        name=f"bench-{tag}", tags=frozenset(), capacity=n, ttl=600, now=at
    )
    extra = {"notify": {"failure": ("ops",)}} if notify else {}
    for i in range(n):
        spec = JobSpec(
            name=f"{tag}-{i}",
            owner="user:bench",
            run=RunSpec(command=("false",)),
            **extra,  # type: ignore[arg-type]
        )
        job = await store.create_job(spec, next_fire_at=None, created_by="bench", now=at)
        await store.enqueue(new.triggered(job, at))
    claimed = await store.claim(node.id, frozenset(), n, at)
    assert len(claimed) == n
    end = at + timedelta(seconds=1)
    finishes = [
        Finish(
            execution_id=e.id, outcome=Outcome(state=RunState.FAILED, exit_code=1, finished_at=end)
        )
        for e in claimed
    ]
    began = time.perf_counter()
    done = await store.finish_many(finishes, node_id=node.id, retry=no_retry)
    took = time.perf_counter() - began
    assert all(d is not None for d in done)
    await store.deregister_node(node.id, now=end)
    return took / n * 1e6


async def backend(url: str, n: int, rounds: int) -> dict[str, float]:
    out: dict[str, float] = {}
    async with kit.opened(url) as store:
        cases = [("plain", False)] + ([("notify", True)] if HAS_NOTIFY else [])
        for name, notify in cases:
            times = [await one_round(store, n, notify, f"{name}{r}") for r in range(rounds)]
            out[name] = statistics.median(times)
    return out


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sqlite = await backend(f"sqlite:///{Path(tmp) / 'b.db'}", args.runs, args.rounds)
    with kit.pg_database() as url:
        pg = await backend(url, args.runs, args.rounds)
    print(f"finish_many of {args.runs} failed job runs, µs per run (median of {args.rounds})")
    print("| case | SQLite | PostgreSQL |\n|---|---|---|")
    for case in sqlite:
        print(f"| {case} | {sqlite[case]:.0f} | {pg[case]:.0f} |")


if __name__ == "__main__":
    asyncio.run(main())
