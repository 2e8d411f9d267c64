"""A job row no node can plan (a newer node's schedule kind, a zone gone from tzdata) is
quarantined with its reason, and every other job keeps firing (issue 11, Quarantine)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from chaoskit import Chaos, executions, problems, slot_gaps, wait_for

from cronhive.model import RunState


@pytest.mark.slow
@pytest.mark.timeout(90)
async def test_a_job_that_cannot_be_planned_delays_no_other_jobs_slot(chaos: Chaos) -> None:
    now = datetime.now(UTC)
    # Due first, so it comes first in every firing batch.
    bad = await chaos.create_job(
        chaos.ledger.quick(), name="from-the-future", schedule="every 1s",
        first_at=now - timedelta(seconds=3),
    )  # fmt: skip
    with chaos.pg.admin("cronhive") as conn:
        conn.execute(
            "UPDATE jobs SET schedule_kind = 'lunar', schedule_expression = 'every full moon' "
            "WHERE id = %s",
            (bad.id,),
        )
    first = now + timedelta(seconds=4)
    good = [
        await chaos.create_job(
            chaos.ledger.quick(), name=f"q{i}", schedule="every 1s", first_at=first
        )
        for i in range(5)
    ]
    chaos.node("a", lease_ttl=3.0).start()
    await chaos.wait_joined(["a"])

    async def good_fired() -> bool:
        rows = await executions(chaos.store, good[0].id)
        return any(r.state is RunState.SUCCEEDED for r in rows)

    await wait_for(good_fired, within=30, what="the other jobs fired")
    await asyncio.sleep(6)
    end = datetime.now(UTC)
    for job in good:
        rows = await executions(chaos.store, job.id)
        assert job.next_fire_at is not None
        gaps = slot_gaps(rows, job.next_fire_at, end - timedelta(seconds=2))
        assert not gaps, f"{job.name}: " + problems(gaps) + chaos.logs()
        late = [f"{r.scheduled_for:%T}: {r.reason}" for r in rows if r.state is RunState.SKIPPED]
        assert not late, f"{job.name} delayed: " + problems(late) + chaos.logs()
    assert not await executions(chaos.store, bad.id)
    # The owner learns why: an event naming the job and its reason.
    events = await chaos.store.list_events(visible_to=None, limit=1000)
    said = [e for e in events if e.job_id == bad.id and "quarantin" in f"{e.kind} {e.message}"]
    assert said, f"no quarantine event for the job: {[(e.kind, e.message) for e in events][-10:]}"
