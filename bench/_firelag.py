"""Fire lag: how late a scheduled process starts, cronhive against APScheduler 3.

The load: 10,000 jobs, of which 100 fire every second (`every 1s`, all on the whole
second; or, spread, `every 1s offset H`: each at a millisecond of its own) and 9,900 are
daily jobs that never come due during the run. Each firing job
runs `date +%s.%N`, so the child itself records when it started. cronhive runs as
`cronhive server` processes (see `_ebkit.cluster`); the window's runs are waited for
(bounded) before the nodes stop, so a late run is counted, not cut off.

Lag is measured two ways for cronhive: `claim` = `executions.started_at` (the instant
the run was claimed, just before the spawn) minus `scheduled_for`; `child` = the time
the child printed minus `scheduled_for` (spawn included). For APScheduler only the
child's time exists; its slot is the whole second before the job function started
(valid while lags stay under a second, which the counts confirm).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import _ebkit as kit
import sqlalchemy as sa
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from cronhive.blobs import BlobNotFound, BlobStore, open_blobs
from cronhive.blobs.archive import ArchivedOutput
from cronhive.model import Stream
from cronhive.store.schema import executions, jobs, output_archives, output_chunks
from cronhive.store.sql import SqlStore

FIRING = 100
DAILY = 9_900
WARMUP = 2.0  # seconds after the node is up before slots count
DATE = ("date", "+%s.%N")


@dataclass(frozen=True, kw_only=True)
class Lag:
    expected: int
    fired: int
    claim_ms: list[float]
    child_ms: list[float]


async def _setup_jobs(store: SqlStore, spread: bool) -> None:
    daily = kit.far_daily()
    every = "every 1s offset H" if spread else "every 1s"
    specs = [kit.job(f"tick-{i}", DATE, every) for i in range(FIRING)]
    specs += [kit.job(f"daily-{i}", ("/bin/true",), daily) for i in range(DAILY)]
    await kit.insert_jobs(store, specs)


def _window(seconds: float) -> tuple[datetime, datetime]:
    start = datetime.fromtimestamp(math.ceil(time.time() + WARMUP), UTC)
    return start, start + timedelta(seconds=seconds)


@dataclass(frozen=True, kw_only=True)
class Fired:
    """One execution of a bench job: its slot, claim, and the child's own start time."""

    job_id: object
    scheduled_for: datetime
    started_at: datetime | None
    child: float | None  # epoch seconds the child printed; None: no output (yet)


async def fired(
    store: SqlStore, prefix: str, start: datetime, end: datetime, blob_dirs: Sequence[Path] = ()
) -> list[Fired]:
    """Executions of the jobs named `prefix...` with slots in [start, end). A run's output
    is in the database, or archived to the blob directory of the node that ran it (a
    node alone on its database archives each run as it ends): `blob_dirs` are looked in."""
    firing = sa.select(jobs.c.id).where(jobs.c.name.startswith(prefix))
    e, o, a = executions.c, output_chunks.c, output_archives.c
    stmt = (
        sa.select(e.id, e.job_id, e.scheduled_for, e.started_at, o.data, a.manifest)
        .select_from(
            executions.outerjoin(
                output_chunks, (o.execution_id == e.id) & (o.stream == "stdout")
            ).outerjoin(output_archives, a.execution_id == e.id)
        )
        .where(e.job_id.in_(firing), e.scheduled_for >= start, e.scheduled_for < end)
    )
    async with store._reader.connect() as conn:
        found = (await conn.execute(stmt)).all()
    blobs = [open_blobs("local", local_dir=d, s3=None) for d in blob_dirs]
    out = []
    for eid, job_id, scheduled, started, data, manifest in found:
        if data is None and manifest is not None:
            data = await _archived(blobs, eid, manifest)
        child = float(data.decode()) if data else None
        out.append(Fired(job_id=job_id, scheduled_for=scheduled, started_at=started, child=child))
    return out


async def _archived(blobs: list[BlobStore], eid: UUID, manifest: dict[str, Any]) -> bytes | None:
    for store in blobs:
        with contextlib.suppress(BlobNotFound):
            chunks = await ArchivedOutput(store, eid, manifest).read(streams=[Stream.STDOUT])
            return b"".join(c.data for c in chunks)
    return None


async def _collect(
    store: SqlStore, start: datetime, end: datetime, blob_dirs: Sequence[Path]
) -> Lag:
    claim, child = [], []
    runs = await fired(store, "tick-", start, end, blob_dirs)
    for run in runs:
        if run.started_at is not None:
            claim.append((run.started_at - run.scheduled_for).total_seconds() * 1000)
        if run.child is not None:
            child.append((run.child - run.scheduled_for.timestamp()) * 1000)
    seconds = round((end - start).total_seconds())
    return Lag(expected=FIRING * seconds, fired=len(runs), claim_ms=claim, child_ms=child)


async def settle(
    store: SqlStore, start: datetime, end: datetime, expected: int, within: float
) -> bool:
    """Waits (bounded) until `expected` runs of slots in [start, end) are terminal (so
    every slot has come); False if that took longer than `within` seconds."""
    e = executions.c
    stmt = sa.select(sa.func.count()).where(
        e.scheduled_for >= start, e.scheduled_for < end, e.state.in_(kit.TERMINAL)
    )
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        async with store._reader.connect() as conn:
            if (await conn.execute(stmt)).scalar_one() >= expected:
                return True
        await asyncio.sleep(0.25)
    return False


async def until(instant: datetime) -> None:
    await asyncio.sleep(max(0.0, (instant - kit.now()).total_seconds()))


async def cronhive_lag(
    backend: str,
    workdir: Path,
    seconds: float,
    *,
    spread: bool,
    isolation: str | None,
    nodes: int = 1,
) -> Lag:
    """`cronhive server` processes: one on an SQLite file ("sqlite"), or `nodes` on
    PostgreSQL ("pg"); `isolation` as `spawn_node`'s."""

    async def setup(store: SqlStore) -> None:
        await _setup_jobs(store, spread)

    async with kit.cluster(
        backend, workdir, nodes=nodes, capacity=256, isolation=isolation, setup=setup
    ) as c:
        start, end = _window(seconds)
        await settle(c.store, start, end, FIRING * round(seconds), seconds + WARMUP + 60)
        c.stop()  # drained: every run that started has its output recorded
        return await _collect(c.store, start, end, c.blob_dirs)


async def cronhive_sqlite(workdir: Path, seconds: float, *, spread: bool = False) -> Lag:
    return await cronhive_lag("sqlite", workdir, seconds, spread=spread, isolation=None)


async def cronhive_pg(workdir: Path, seconds: float, *, spread: bool = False) -> Lag:
    return await cronhive_lag("pg", workdir, seconds, spread=spread, isolation=None)


async def apscheduler(seconds: float) -> Lag:
    """The same load in APScheduler 3's AsyncIOScheduler (memory job store)."""
    records: list[tuple[float, float]] = []

    async def fire() -> None:
        began = time.time()
        proc = await asyncio.create_subprocess_exec(*DATE, stdout=subprocess.PIPE)
        out, _ = await proc.communicate()
        records.append((began, float(out)))

    async def true() -> None:
        proc = await asyncio.create_subprocess_exec("/bin/true")
        await proc.wait()

    sched = AsyncIOScheduler(
        timezone=UTC,
        job_defaults={"misfire_grace_time": 30, "max_instances": 10, "coalesce": False},
    )
    first = datetime.fromtimestamp(math.ceil(time.time() + 2), UTC)
    for i in range(FIRING):
        sched.add_job(fire, IntervalTrigger(seconds=1, start_date=first), id=f"tick-{i}")
    hour = (kit.now().hour + 12) % 24
    for i in range(DAILY):
        sched.add_job(true, CronTrigger(hour=hour, minute=0, timezone=UTC), id=f"daily-{i}")
    sched.start()
    start, end = _window(seconds)
    await until(end + timedelta(seconds=0.5))
    sched.shutdown(wait=False)
    await asyncio.sleep(0.5)  # let the last children report
    t0, t1 = start.timestamp(), end.timestamp()
    child = [(c - math.floor(b)) * 1000 for b, c in records if t0 <= math.floor(b) < t1]
    return Lag(expected=FIRING * round(seconds), fired=len(child), claim_ms=[], child_ms=child)
