"""A job row the scheduler cannot read or plan is set aside; the other jobs keep firing."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from enginekit import create_job, executions_of, job_spec, running_node, wait_for

from cronhive.model import RunState
from cronhive.store import Store
from cronhive.store.schema import jobs


async def test_an_unreadable_job_is_quarantined_and_others_keep_firing(
    store: Store, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    good = await create_job(store, job_spec(("true",), schedule="every 1s"), now)
    bad = await create_job(store, job_spec(("true",), schedule="every 1s"), now)
    # What a newer node's schedule kind, or a zone gone from tzdata, looks like here.
    async with store._write() as tx:  # type: ignore[attr-defined]
        await tx.run(
            jobs.update().where(jobs.c.id == bad.id).values(schedule_timezone="Mars/Olympus")
        )
    async with running_node(store, tmp_path):

        async def good_fired_twice() -> bool:
            runs = await executions_of(store, good.id)
            return sum(r.state is RunState.SUCCEEDED for r in runs) >= 2

        await wait_for(good_fired_twice, within=30)
    set_aside = await store.get_job(bad.id, visible_to=None)
    assert set_aside.next_fire_at is None
    assert set_aside.quarantine is not None and "Mars/Olympus" in set_aside.quarantine
    assert await executions_of(store, bad.id) == []
    kinds = [(e.kind, e.job_id) for e in await store.list_events(visible_to=None)]
    assert ("job.quarantined", bad.id) in kinds
    # Its owner still lists it (with the reason), and a new spec clears the quarantine.
    listed = {j.id: j for j in await store.list_jobs(visible_to=None)}
    assert listed[bad.id].quarantine == set_aside.quarantine
    spec = replace(good.spec, name="fixed")
    fixed = await store.update_job(bad.id, spec, next_fire_at=now, visible_to=None, now=now)
    assert fixed.quarantine is None
