"""Bursts: N jobs due at the same instant, and how late each child starts.

Every child runs `date +%s.%N`, so it records its own start; its lag is that minus the
slot. The slots are those of `every Ps` (epoch-aligned: all N jobs share each one);
`warmup` slots after start are not counted (a node's first spawns, cold caches; a full
run has one, a quick one none), then `rounds` slots are. Beside cronhive, the same burst
in APScheduler 3 (AsyncIOScheduler, memory or SQLAlchemy job store on SQLite), raw asyncio (N
`create_subprocess_exec` at the instant) and a C `posix_spawn` loop (spawnloop.c).
Those children append their line to one file (O_APPEND); each line is assigned to the
latest slot at or before it (lags stay under the period, which the counts confirm); a
cronhive run knows its own slot (`scheduled_for`).
"""

from __future__ import annotations

import asyncio
import math
import os
import shutil
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import _ebkit as kit
import _firelag as firelag
from apscheduler.jobstores.base import BaseJobStore
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from cronhive.store.sql import SqlStore

DATE = (shutil.which("date") or "/bin/date", "+%s.%N")
STARTUP = 3.0  # seconds from setup to the first slot: node processes start meanwhile


@dataclass(frozen=True, kw_only=True)
class Shape:
    jobs: int  # due at each slot
    period: float  # seconds between slots
    rounds: int  # slots counted
    warmup: int  # slots before them, not counted

    def slots(self, after: float) -> list[datetime]:
        """Warm-up and counted slots, the first after `after` (epoch seconds)."""
        return slots_after(after, self.period, self.warmup + self.rounds)


@dataclass(frozen=True, kw_only=True)
class Burst:
    jobs: int
    slots: list[datetime]  # the counted ones
    lags_ms: dict[datetime, list[float]]  # per slot, each child's start minus the slot
    runs: int  # executions (or children) seen in the counted slots
    twice: int | None = None  # runs beyond one per (job, slot); None: not recorded
    notes: list[str] = field(default_factory=list)

    @property
    def expected(self) -> int:
        return self.jobs * len(self.slots)

    @property
    def started(self) -> int:
        return sum(len(v) for v in self.lags_ms.values())

    def all_ms(self) -> list[float]:
        return [lag for lags in self.lags_ms.values() for lag in lags]

    def last_ms(self) -> list[float]:
        """Per counted slot, the last child's start minus the slot (nan: none started)."""
        return [max(self.lags_ms.get(s) or [math.nan]) for s in self.slots]

    def counts(self) -> str:
        if self.twice is None:
            return f"{self.started}/{self.expected} started"
        once = self.runs - self.twice
        return f"{once}/{self.expected} slots fired, {self.twice} twice, {self.started} started"


def slots_after(instant: float, period: float, count: int) -> list[datetime]:
    """The first `count` multiples of `period` (epoch-aligned) after `instant`."""
    first = math.ceil(instant / period) * period
    return [datetime.fromtimestamp(first + k * period, UTC) for k in range(count)]


def _assign(times: list[float], slots: list[datetime], jobs: int) -> Burst:
    """Children's start times (epoch) sorted into the counted slots."""
    stamps = [s.timestamp() for s in slots]
    lags: dict[datetime, list[float]] = {s: [] for s in slots}
    for t in times:
        at = max((i for i, s in enumerate(stamps) if s <= t + 1e-6), default=None)
        if at is not None:
            lags[slots[at]].append((t - stamps[at]) * 1000)
    return Burst(jobs=jobs, slots=slots, lags_ms=lags, runs=sum(map(len, lags.values())))


# --- cronhive ------------------------------------------------------------------------


async def cronhive(
    backend: str,
    workdir: Path,
    shape: Shape,
    *,
    nodes: int,
    capacity: int,
    isolation: str,
) -> Burst:
    """`shape.jobs` jobs `every {period}s` on `nodes` `cronhive server` processes."""
    jobs, period, rounds = shape.jobs, shape.period, shape.rounds
    first: list[datetime] = []

    async def setup(store: SqlStore) -> None:
        first[:] = slots_after(time.time() + STARTUP, period, 1)
        specs = []
        for i in range(jobs):
            spec, _ = kit.job(f"burst-{i}", DATE, f"every {period:g}s")
            specs.append((spec, first[0]))
        await kit.insert_jobs(store, specs)

    async with kit.cluster(
        backend, workdir, nodes=nodes, capacity=capacity, isolation=isolation, setup=setup
    ) as c:
        # Counted: after the warm-up slots, and at least 1 s after every node is live.
        after = max(first[0].timestamp() + shape.warmup * period, time.time() + 1.0)
        slots = slots_after(after - 1e-3, period, rounds)
        start, end = slots[0], slots[-1] + timedelta(seconds=period / 2)
        within = (end - kit.now()).total_seconds() + period + 60
        done = await firelag.settle(c.store, start, end, jobs * rounds, within)
        c.stop()  # drained: every run that ended has its output recorded
        runs = await firelag.fired(c.store, "burst-", start, end, c.blob_dirs)
    distinct = Counter((r.job_id, r.scheduled_for) for r in runs)
    lags: dict[datetime, list[float]] = {s: [] for s in slots}
    for r in runs:  # each run knows its slot: a lag may exceed the period
        if r.child is not None:
            lags.setdefault(r.scheduled_for, []).append(
                (r.child - r.scheduled_for.timestamp()) * 1000
            )
    notes = [] if done else [f"not all {jobs * rounds} runs ended within {within:.0f}s"]
    return Burst(
        jobs=jobs,
        slots=slots,
        lags_ms=lags,
        runs=len(runs),
        twice=len(runs) - len(distinct),
        notes=notes,
    )


# --- APScheduler 3, raw asyncio, C -------------------------------------------------

_out: list[str] = []  # where aps_child's children write: module state, for pickled jobs


async def aps_child() -> None:
    """The APScheduler job: one child, its line appended to the bench's file."""
    fd = os.open(_out[0], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        proc = await asyncio.create_subprocess_exec(*DATE, stdout=fd)
    finally:
        os.close(fd)
    await proc.wait()


def _read_times(path: Path) -> list[float]:
    return [float(line) for line in path.read_text().split()] if path.exists() else []


async def apscheduler(workdir: Path, shape: Shape, *, store: str) -> Burst:
    """APScheduler 3's AsyncIOScheduler, `store` "memory" or "sqlite" (SQLAlchemy)."""
    out = workdir / f"aps-{store}-{time.time_ns()}.txt"
    _out[:] = [str(out)]
    slots = shape.slots(time.time() + 2.0)
    jobstore: BaseJobStore = (
        MemoryJobStore()
        if store == "memory"
        else SQLAlchemyJobStore(url=f"sqlite:///{workdir / f'aps-{time.time_ns()}.db'}")
    )
    sched = AsyncIOScheduler(
        jobstores={"default": jobstore},
        timezone=UTC,
        job_defaults={"misfire_grace_time": 30, "max_instances": 10, "coalesce": False},
    )
    for i in range(shape.jobs):
        trigger = IntervalTrigger(seconds=shape.period, start_date=slots[0])
        sched.add_job(aps_child, trigger, id=f"burst-{i}")
    sched.start()
    try:
        await firelag.until(slots[-1] + timedelta(seconds=shape.period * 0.9))
    finally:
        sched.shutdown(wait=False)
        await asyncio.sleep(0.5)  # let the last children write
    return _assign(_read_times(out), slots[shape.warmup :], shape.jobs)


async def raw_asyncio(workdir: Path, shape: Shape, *, concurrency: int) -> Burst:
    """At each slot, `shape.jobs` children from `create_subprocess_exec`, `concurrency` at once."""
    out = workdir / f"raw-{time.time_ns()}.txt"
    slots = shape.slots(time.time() + 1.0)
    fd = os.open(out, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    sem = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with sem:
            proc = await asyncio.create_subprocess_exec(*DATE, stdout=fd)
            await proc.wait()

    try:
        for slot in slots:
            await firelag.until(slot)
            await asyncio.gather(*(one() for _ in range(shape.jobs)))
    finally:
        os.close(fd)
    return _assign(_read_times(out), slots[shape.warmup :], shape.jobs)


def compile_spawnloop(into: Path) -> Path | None:
    """spawnloop.c built with `cc -O2` into `into`; None when there is no compiler."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        return None
    binary = into / "spawnloop"
    source = Path(__file__).with_name("spawnloop.c")
    subprocess.run([cc, "-O2", "-o", str(binary), str(source), "-lm"], check=True)
    return binary


async def c_spawn(binary: Path, workdir: Path, shape: Shape, *, concurrency: int) -> Burst:
    """At each slot, spawnloop starts `shape.jobs` children, `concurrency` at once."""
    out = workdir / f"c-{time.time_ns()}.txt"
    slots = shape.slots(time.time() + 1.0)
    for slot in slots:
        await firelag.until(slot - timedelta(seconds=0.5))  # it sleeps the rest itself
        args = (f"{slot.timestamp():.6f}", str(shape.jobs), str(concurrency), str(out), *DATE)
        proc = await asyncio.create_subprocess_exec(str(binary), *args)
        if await proc.wait() != 0:
            raise RuntimeError(f"spawnloop failed ({proc.returncode})")
    return _assign(_read_times(out), slots[shape.warmup :], shape.jobs)
