"""A node whose wall clock is 10 s fast and one 10 s slow (libfaketime) beside a correct
one: the database's clock is the cluster's, so nothing changes (issue 10, Clock)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from chaoskit import (
    Chaos,
    NodeWatch,
    executions,
    problems,
    retries_follow_loss,
    slot_gaps,
    utc,
    wait_for,
)

from cronhive.model import RetryPolicy, RunState

TTL = 3.0
WINDOW = 15.0  # seconds of firing watched
# How early a child may start before its slot: what measuring the node's offset from the
# database over a loaded machine's round trips can leave (the skew itself is 10 s).
EARLY_TOLERANCE = 1.0


@pytest.mark.slow
@pytest.mark.timeout(150)
async def test_nodes_10s_ahead_and_behind_keep_every_lease_and_fire_on_time(
    chaos: Chaos,
) -> None:
    skews = {"ahead": "+10s", "behind": "-10s", "exact": None}
    for name, skew in skews.items():
        chaos.node(name, lease_ttl=TTL, capacity=4, skew=skew).start()
    # (alive by whose clock? each node's lease as it wrote it: only registration here)
    await chaos.wait_joined(skews, alive=False)
    with NodeWatch(chaos.store) as watch:
        start = datetime.now(UTC) + timedelta(seconds=2)
        quick = [
            await chaos.create_job(
                chaos.ledger.quick(), name=f"tick-{i}", schedule="every 1s", first_at=start
            )
            for i in range(10)
        ]
        # Long runs hold leases on every node for most of the window.
        long_jobs = [
            await chaos.create_job(
                chaos.ledger.ticking(8), name=f"long-{i}", retry=RetryPolicy(max_retries=2)
            )
            for i in range(6)
        ]
        for job in long_jobs:
            await chaos.trigger(job)
        await asyncio.sleep(WINDOW)
        end = datetime.now(UTC)

        async def long_runs_over() -> bool:
            rows = [r for j in long_jobs for r in await executions(chaos.store, j.id)]
            return all(r.state.terminal for r in rows)

        await wait_for(long_runs_over, within=30, what="the long runs ended")
        await watch.sample()
    rows = await executions(chaos.store)
    lost = [
        f"{r.job_name} attempt {r.attempt}: {r.reason}" for r in rows if r.state is RunState.LOST
    ]
    assert not lost, "live leases reaped: " + problems(lost) + chaos.logs()

    # Every node kept its one registration (a fenced node registers again, under a new id).
    ids = {name: watch.ids_of(name) for name in skews}
    assert all(len(v) == 1 for v in ids.values()), f"re-registrations: {ids}\n{chaos.logs()}"

    # No child started before its slot by more than the tolerance.
    by_id = {str(r.id): r for r in rows}
    early = []
    for e in chaos.ledger.entries():
        row = by_id.get(e.run_id)
        if e.kind == "run" and row is not None:
            ahead = (row.scheduled_for - utc(e.at)).total_seconds()
            if ahead > EARLY_TOLERANCE:
                early.append(f"{row.job_name} slot {row.scheduled_for:%H:%M:%S} started "
                             f"{ahead:.2f}s early on {watch.names.get(row.node_id)}")  # type: ignore[arg-type]  # fmt: skip
    assert not early, "early fires: " + problems(early)

    # Every slot fired once, none skipped; every node kept working to the end.
    for job in quick:
        mine = [r for r in rows if r.job_id == job.id]
        assert job.next_fire_at is not None
        gaps = slot_gaps(mine, job.next_fire_at, end - timedelta(seconds=2))
        assert not gaps, f"{job.name}: " + problems(gaps) + chaos.logs()
        skipped = [
            f"{r.scheduled_for:%H:%M:%S} {r.reason}" for r in mine if r.state is RunState.SKIPPED
        ]
        assert not skipped, f"{job.name} skipped: " + problems(skipped)
    late_half = start + timedelta(seconds=WINDOW / 2)
    worked = {
        watch.names.get(r.node_id)
        for r in rows
        if r.node_id is not None and r.started_at is not None and r.scheduled_for >= late_half
    }
    assert set(skews) <= worked, f"only {worked} ran work in the second half\n{chaos.logs()}"
    assert not retries_follow_loss(rows)
    for job in long_jobs:
        [run] = await executions(chaos.store, job.id)
        assert run.state is RunState.SUCCEEDED, (run.state, run.reason)
