"""Fire lag: how late a scheduled process starts, cronhive against APScheduler 3.

The load: 10,000 jobs, of which 100 fire every second (`every 1s`, all on the whole
second; or, spread, `every 1s offset H`: each at a millisecond of its own) and 9,900 are
daily jobs that never come due during the run. Each firing job
runs `date +%s.%N`, so the child itself records when it started.

Lag is measured two ways for cronhive: `claim` = `executions.started_at` (the instant
the run was claimed, just before the spawn) minus `scheduled_for`; `child` = the time
the child printed minus `scheduled_for` (spawn included). For APScheduler only the
child's time exists; its slot is the whole second before the job function started
(valid while lags stay under a second, which the counts confirm).
"""

from __future__ import annotations

import asyncio
import math
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import _ebkit as kit
import sqlalchemy as sa
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from cronhive.engine.node import NodeProcess
from cronhive.store.schema import executions, jobs, output_chunks
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


async def _collect(store: SqlStore, start: datetime, end: datetime) -> Lag:
    firing = sa.select(jobs.c.id).where(jobs.c.name.startswith("tick-"))
    e, o = executions.c, output_chunks.c
    stmt = (
        sa.select(e.scheduled_for, e.started_at, o.data)
        .select_from(
            executions.outerjoin(output_chunks, (o.execution_id == e.id) & (o.stream == "stdout"))
        )
        .where(e.job_id.in_(firing), e.scheduled_for >= start, e.scheduled_for < end)
    )
    async with store._reader.connect() as conn:
        found = (await conn.execute(stmt)).all()
    claim, child = [], []
    for scheduled, started, data in found:
        if started is not None:
            claim.append((started - scheduled).total_seconds() * 1000)
        if data:
            child.append((float(data.decode()) - scheduled.timestamp()) * 1000)
    seconds = round((end - start).total_seconds())
    return Lag(expected=FIRING * seconds, fired=len(found), claim_ms=claim, child_ms=child)


async def _until(instant: datetime) -> None:
    await asyncio.sleep(max(0.0, (instant - kit.now()).total_seconds()))


async def cronhive_sqlite(workdir: Path, seconds: float, *, spread: bool = False) -> Lag:
    """One node in this process on an SQLite file (the embedded default)."""
    db = workdir / f"lag{'-spread' if spread else ''}.db"
    async with kit.opened(f"sqlite:///{db}") as store:
        await _setup_jobs(store, spread)
        node = NodeProcess(store, kit.node_config("lag", workdir / f"{db.stem}-spool", 256, store))
        task = asyncio.create_task(node.run())
        await asyncio.wait_for(node.ready.wait(), 30)
        start, end = _window(seconds)
        await _until(end + timedelta(seconds=0.5))
        node.shutdown()
        await asyncio.wait_for(task, 60)
        return await _collect(store, start, end)


async def cronhive_pg(workdir: Path, seconds: float, *, spread: bool = False) -> Lag:
    """One `cronhive server` process on PostgreSQL."""
    with kit.pg_database() as url:
        async with kit.opened(url) as store:
            await _setup_jobs(store, spread)
            proc = kit.spawn_node(url, workdir, "lag-pg", capacity=256)
            try:
                await kit.wait_nodes(store, {"lag-pg"})
                start, end = _window(seconds)
                await _until(end + timedelta(seconds=0.5))
            finally:
                kit.stop_node(proc)
            return await _collect(store, start, end)


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
    await _until(end + timedelta(seconds=0.5))
    sched.shutdown(wait=False)
    await asyncio.sleep(0.5)  # let the last children report
    t0, t1 = start.timestamp(), end.timestamp()
    child = [(c - math.floor(b)) * 1000 for b, c in records if t0 <= math.floor(b) < t1]
    return Lag(expected=FIRING * round(seconds), fired=len(child), claim_ms=[], child_ms=child)
