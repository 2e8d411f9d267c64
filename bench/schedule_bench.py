"""Schedule benchmarks: next_after per call, counting and listing missed slots, planning
a job far behind, and `cronhive cron next` before a fall-back against July.

Run: ``.venv/bin/python bench/schedule_bench.py [--quick]``

1. next_after: a chain of calls (each from the previous answer), per call, beside cronsim
   reused directly (one aware `CronSim`, `next()` per fire time: cronsim's own DST
   handling, which cronhive's policy does not use) and beside the search cronhive did
   before (a fresh iterator per call from the smallest offset of the next two days).
2. slots: `fires_between` (per slot) and `count_between` (per call) over long ranges.
3. plan: `planner.plan` for one job after an outage (500 slots recorded, the rest
   counted), median of several; and 200 such minute jobs, as the issue measured them.
4. CLI: ``cronhive cron next '* * * * * *' --tz Europe/Berlin --after <day>T12:00:00+02:00
   -n 1000`` as a subprocess, 2026-10-24 (48 h before the fall-back) against 2026-07-24.

Timings are wall clock on a shared machine: the load average is printed with them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from zoneinfo import ZoneInfo

from cronsim import CronSim

from cronhive.engine.planner import plan
from cronhive.model import Job, JobSpec, Misfire, RunSpec
from cronhive.schedule import parse_schedule
from cronhive.schedule._dst import DstRepeated, DstSkipped, apply_policy, readings

CRONHIVE = Path(sys.executable).parent / "cronhive"
JULY, OCTOBER = "2026-07-24T12:00:00+02:00", "2026-10-24T12:00:00+02:00"
CASES = [  # expression, zone, first instant asked about
    ("*/1 * * * *", "Europe/Berlin", JULY),
    ("*/1 * * * *", "Europe/Berlin", OCTOBER),
    ("* * * * * *", "Europe/Berlin", JULY),
    ("* * * * * *", "Europe/Berlin", OCTOBER),
    ("*/5 * * * *", "Europe/Berlin", "2026-10-25T01:00:00+02:00"),  # through the repeat
    ("*/15 * * * *", "Australia/Lord_Howe", "2026-10-03T20:00:00+10:30"),  # 30-minute gap
    ("0 9 * * 1-5", "America/New_York", JULY),
    ("30 2 * * *", "Europe/Berlin", JULY),
]


def per_call(step: Callable[[], object], budget: float, most: int) -> float:
    """Seconds per call of `step`, calling it `most` times or for `budget` seconds."""
    n, t0 = 0, time.perf_counter()
    while n < most and (n % 16 or time.perf_counter() - t0 < budget):
        step()
        n += 1
    return (time.perf_counter() - t0) / n


def chain(step: Callable[[datetime], datetime | None], first: datetime) -> Callable[[], None]:
    """Each call asks `step` about the previous answer, as iter_after does."""
    state = [first]

    def call() -> None:
        state[0] = step(state[0]) or state[0]

    return call


def fresh_next(expr: str, zone: ZoneInfo, after: datetime) -> datetime | None:
    # The search before the iterator was reused (policy BOTH/SKIP, a wildcard job's).
    offset = min((after + timedelta(days=d)).astimezone(zone).utcoffset() or timedelta()
                 for d in (0, 1, 2))  # fmt: skip
    start = (after + offset).replace(tzinfo=None, microsecond=0) - timedelta(seconds=1)
    best: datetime | None = None
    for wall in CronSim(expr, start):
        kind, candidates = readings(wall, zone)
        if best is not None and candidates[0] >= best:
            break
        for instant in apply_policy(kind, candidates, DstRepeated.BOTH, DstSkipped.SKIP):
            if instant > after and (best is None or instant < best):
                best = instant
    return best


def bench_next_after(calls: int) -> list[str]:
    lines = [
        "| expression | zone | from | cronhive next_after | cronsim reused | ratio | "
        "fresh search (before) |",
        "|---|---|---|---|---|---|---|",
    ]
    for expr, zone_name, start in CASES:
        zone = ZoneInfo(zone_name)
        schedule = parse_schedule("cron", expr, timezone=zone_name)
        first = datetime.fromisoformat(start).astimezone(UTC)
        sim = CronSim(expr, first.astimezone(zone))
        mine = per_call(chain(schedule.next_after, first), 1.0, calls)
        theirs = per_call(sim.__next__, 1.0, calls)
        was = per_call(chain(partial(fresh_next, expr, zone), first), 1.0, calls)
        lines.append(
            f"| `{expr}` | {zone_name} | {start[:16]} | {mine * 1e6:.1f} µs | "
            f"{theirs * 1e6:.1f} µs | {mine / theirs:.2f} | {was * 1e6:.1f} µs |"
        )
    return lines


def bench_slots() -> list[str]:
    lines = ["| question | answer | time |", "|---|---|---|"]
    t0 = datetime.fromisoformat(OCTOBER)
    for expr, zone_name, length in [
        ("* * * * *", "Europe/Berlin", timedelta(hours=9)),
        ("* * * * * *", "Europe/Berlin", timedelta(days=30)),
        ("*/5 9-17 * * MON-FRI", "Europe/Berlin", timedelta(days=3650)),
        ("0 9 * * 1#2", "America/New_York", timedelta(days=3650)),
        ("every 1s", "UTC", timedelta(days=3650)),
    ]:
        kind = "interval" if expr.startswith("every") else "cron"
        schedule = parse_schedule(kind, expr, timezone=zone_name)
        days = length / timedelta(days=1)
        count = schedule.count_between(t0, t0 + length)
        took = per_call(partial(schedule.count_between, t0, t0 + length), 0.5, 200)
        lines.append(
            f"| count_between `{expr}` ({zone_name}), {days:g} days | {count:,} slots | "
            f"{took * 1e3:.3f} ms |"
        )
    for expr in ["* * * * *", "* * * * * *"]:
        schedule = parse_schedule("cron", expr, timezone="Europe/Berlin")
        took = per_call(partial(schedule.fires_between, t0, t0 + timedelta(days=30), 499), 0.5, 200)
        lines.append(
            f"| fires_between `{expr}` (Europe/Berlin), first 499 of 30 days | 499 slots | "
            f"{took * 1e3:.3f} ms ({took / 499 * 1e6:.1f} µs a slot) |"
        )
    return lines


def behind(kind: str, expr: str, zone: str, first: datetime) -> Job:
    return Job(
        id=uuid.uuid4(),
        spec=JobSpec(
            name="bench",
            owner="user:bench",
            run=RunSpec(command=("/bin/true",)),
            schedule=parse_schedule(kind, expr, timezone=zone),
            misfire=Misfire.SKIP,
        ),
        next_fire_at=first,
        created_at=first,
        updated_at=first,
    )


def bench_plan() -> list[str]:
    lines = ["| job, outage | records + passed over | plan() median |", "|---|---|---|"]
    first = datetime.fromisoformat(OCTOBER).astimezone(UTC)
    for kind, expr, down in [
        ("cron", "* * * * *", timedelta(hours=9)),
        ("cron", "* * * * * *", timedelta(days=30)),
        ("interval", "every 1s", timedelta(days=30)),
        ("cron", "* * * * *", timedelta(days=3650)),
    ]:
        times, p = [], None
        for _ in range(15):
            job = behind(kind, expr, "Europe/Berlin", first)  # a fresh schedule each time
            t0 = time.perf_counter()
            p = plan(job, first + down, [])
            times.append(time.perf_counter() - t0)
        assert p is not None
        lines.append(
            f"| `{expr}`, {down} | {len(p.skipped) + len(p.queued)} + {p.passed_over:,} | "
            f"{statistics.median(times) * 1e3:.2f} ms |"
        )
    jobs = [behind("cron", "* * * * *", "Europe/Berlin", first) for _ in range(200)]
    t0 = time.perf_counter()
    for job in jobs:
        plan(job, first + timedelta(hours=9), [])
    lines.append(
        f"| 200 minute jobs, 9 h (all of them) | 200 x (500 + 41) | "
        f"{(time.perf_counter() - t0) * 1e3:.0f} ms |"
    )
    return lines


def bench_cli(repeat: int) -> list[str]:
    lines = ["| `--after` | seconds (median of runs) |", "|---|---|"]
    medians = {}
    for after in (JULY, OCTOBER):
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            subprocess.run(
                [str(CRONHIVE), "cron", "next", "* * * * * *", "--tz", "Europe/Berlin",
                 "--after", after, "-n", "1000"],
                check=True, stdout=subprocess.DEVNULL,
            )  # fmt: skip
            times.append(time.perf_counter() - t0)
        medians[after] = statistics.median(times)
        lines.append(f"| {after} | {medians[after]:.3f} |")
    lines.append(f"| ratio October / July (target <= 2) | {medians[OCTOBER] / medians[JULY]:.2f} |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer calls and runs")
    args = ap.parse_args()
    load = os.getloadavg()[0]
    print(f"schedule bench, Python {sys.version.split()[0]}, load average {load:.1f}\n")
    print("next_after, per call (target <= 50 µs):\n")
    print("\n".join(bench_next_after(300 if args.quick else 3000)))
    print("\ncounting and listing missed slots:\n")
    print("\n".join(bench_slots()))
    print("\nplanning one job far behind (target: a few ms):\n")
    print("\n".join(bench_plan()))
    print("\n`cronhive cron next '* * * * * *' --tz Europe/Berlin -n 1000`:\n")
    print("\n".join(bench_cli(1 if args.quick else 5)))


if __name__ == "__main__":
    main()
