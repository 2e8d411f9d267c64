"""Outage bench: how fast the cluster fires again once PostgreSQL is back, and what an
outage costs in slots.

Run: ``.venv/bin/python bench/chaos_bench.py [--outages 1,3,10] [--jobs 20]`` (as root:
the private cluster runs as the `postgres` OS user; it never touches the shared server).

Two node processes share a private PostgreSQL cluster; `--jobs` jobs fire every second.
For each outage length the cluster is stopped (`pg_ctl stop -m fast`), kept down, and
started again. Measured:
- back -> first fire: from the moment `pg_ctl start` returns (the server answers) to the
  first execution queued after it (`queued_at`, the database's own clock);
- slots skipped per second of outage: slots recorded `skipped` whose time lies in the
  outage plus the seconds after it, per job and per second of outage (the misfire policy
  at work: `once` runs the latest missed slot and records the others).
The fault tooling is the chaos suite's (tests/chaos/chaoskit.py), so the bench breaks
PostgreSQL exactly as the tests do.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "chaos"))

# (found through sys.path at run time; mypy checks the kit with the tests)
from chaoskit import (  # type: ignore[import-not-found]
    ChaosNode,
    PgCluster,
    fresh_store,
    job_spec,
    scratch_dir,
)

from cronhive.model import RunState
from cronhive.store import Store


async def _first_fire_after(store: Store, after: datetime, within: float) -> float | None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        rows = await store.list_executions(visible_to=None, limit=200)
        fired = [r.queued_at for r in rows if r.queued_at >= after]
        if fired:
            return (min(fired) - after).total_seconds()
        await asyncio.sleep(0.02)
    return None


async def _outage(pg: PgCluster, url: str, seconds: float, jobs: int) -> tuple[float, float]:
    await asyncio.sleep(3)  # firing steadily
    down = datetime.now(UTC)
    await asyncio.to_thread(pg.stop, "fast")
    await asyncio.sleep(seconds)
    await asyncio.to_thread(pg.start)
    back = datetime.now(UTC)
    async with fresh_store(url) as store:
        lag = await _first_fire_after(store, back, within=30)
        await asyncio.sleep(3)  # let the misfire policy record what was missed
        rows = await store.list_executions(visible_to=None, limit=1_000_000)
    window_end = back + timedelta(seconds=1)
    skipped = [
        r for r in rows if r.state is RunState.SKIPPED and down <= r.scheduled_for <= window_end
    ]
    outage = (back - down).total_seconds()
    return (lag if lag is not None else float("nan"), len(skipped) / jobs / outage)


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--outages", default="1,3,10", help="seconds, comma-separated")
    ap.add_argument("--jobs", type=int, default=20)
    args = ap.parse_args()
    root = scratch_dir("cronhive-chaos-bench-")
    (root / "pg").mkdir()
    pg = PgCluster.create(root / "pg")
    pg.start()
    url = pg.create_database()
    nodes = [ChaosNode(root, f"b{i}", url, lease_ttl=5.0).start() for i in (1, 2)]
    results: list[tuple[float, float, float]] = []
    try:
        async with fresh_store(url) as store:
            now = datetime.now(UTC)
            for i in range(args.jobs):
                spec = job_spec(("true",), name=f"every-second-{i}", schedule="every 1s")
                first = spec.schedule.next_after(now) if spec.schedule else None
                await store.create_job(spec, next_fire_at=first, created_by="bench", now=now)
        for seconds in (float(s) for s in args.outages.split(",")):
            lag, per_second = await _outage(pg, url, seconds, args.jobs)
            results.append((seconds, lag, per_second))
            print(
                f"  outage {seconds:g}s: first fire {lag * 1000:.0f} ms after the database "
                f"is back; {per_second:.2f} slots skipped per job per second of outage",
                flush=True,
            )
    finally:
        for node in nodes:
            node.cleanup()
        pg.destroy()
        shutil.rmtree(root, ignore_errors=True)
    print()
    print(f"{'outage':<10}{'back -> first fire':<22}{'target':<10}{'skipped/job/s':<15}")
    for seconds, lag, per_second in results:
        print(f"{seconds:<10g}{lag * 1000:<22.0f}{'<= 1000':<10}{per_second:<15.2f}")


if __name__ == "__main__":
    asyncio.run(main())
