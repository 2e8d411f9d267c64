"""A node frozen with SIGSTOP for 3x its lease while 50 jobs fire every second on 3 nodes
(issue 10, Freeze): the others keep firing every slot, its runs move on, and its old
copies are dead before their successors start."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from chaoskit import (
    Chaos,
    NodeWatch,
    dead_before_retry,
    executions,
    problems,
    slot_at_or_after,
    slot_gaps,
    stored_output,
    wait_for,
)

from cronhive.model import Execution, RetryPolicy, RunState

TTL = 2.0


def _retry_of(rows: list[Execution], lost: Execution) -> Execution | None:
    for r in rows:
        same_slot = r.job_id == lost.job_id and r.scheduled_for == lost.scheduled_for
        if same_slot and r.attempt == lost.attempt + 1:
            return r
    return None


@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_frozen_node_loses_its_runs_while_the_others_fire_every_slot(
    chaos: Chaos,
) -> None:
    nodes = {n.name: n for n in chaos.start_nodes(["a", "b", "c"], lease_ttl=TTL, capacity=24)}
    ids = await chaos.wait_joined(nodes)
    with NodeWatch(chaos.store) as watch:
        first = datetime.now(UTC) + timedelta(seconds=2)
        quick = [
            await chaos.create_job(
                chaos.ledger.quick(), name=f"q{i:02}", schedule="every 1s", first_at=first
            )
            for i in range(50)
        ]
        long_jobs = [
            await chaos.create_job(
                chaos.ledger.ticking(20),
                name=f"long-{i}",
                retry=RetryPolicy(max_retries=2, delay=0.05),
            )
            for i in range(6)
        ]
        for job in long_jobs:
            await chaos.trigger(job)

        async def long_runs_started() -> bool:
            rows = [r for j in long_jobs for r in await executions(chaos.store, j.id)]
            return sum(r.state is RunState.RUNNING for r in rows) == len(long_jobs)

        await wait_for(long_runs_started, within=30, what="the long runs started")
        await asyncio.sleep(3)
        # The victim: the node with the most long runs in flight.
        long_rows = [r for j in long_jobs for r in await executions(chaos.store, j.id)]
        running = Counter(r.node_id for r in long_rows if r.state is RunState.RUNNING)
        victim_id = running.most_common(1)[0][0]
        [victim] = [nodes[name] for name, i in ids.items() if i == victim_id]
        victim.freeze()
        frozen_at = datetime.now(UTC)

        async def victims_runs_retried() -> bool:
            rows = await executions(chaos.store)
            mine = [r for r in rows if r.node_id == victim_id]
            lost = [r for r in mine if r.state is RunState.LOST]
            started = [_retry_of(rows, r) for r in lost]
            return (
                all(r.state.terminal for r in mine)
                and bool(lost)
                and all(s is not None and s.started_at is not None for s in started)
            )

        # Frozen for 3x the TTL at least, and until its runs have moved on (bounded).
        await asyncio.sleep(3 * TTL)
        moved_on = True
        try:
            await wait_for(victims_runs_retried, within=TTL + 15, what="its runs retried")
        except AssertionError:
            moved_on = False
        thawed_at = datetime.now(UTC)
        before_thaw = {r.id: r for r in await executions(chaos.store) if r.node_id == victim_id}
        output_before = {i: await stored_output(chaos.store, i) for i in before_thaw}
        victim.thaw()
        thaw_wall = time.time()
        await asyncio.sleep(2 * TTL + 1)
        end = datetime.now(UTC)
        await watch.sample()

    rows = await executions(chaos.store)
    assert moved_on, (
        f"the frozen node's runs were not all lost and retried elsewhere within "
        f"{TTL + 15:g}s after 3x TTL\n{chaos.logs()}"
    )
    # The other two kept firing every slot during the freeze (and none was skipped).
    for job in quick:
        mine = [r for r in rows if r.job_id == job.id]
        assert job.next_fire_at is not None
        gaps = slot_gaps(mine, slot_at_or_after(job.next_fire_at, frozen_at), thawed_at)
        assert not gaps, f"{job.name} during the freeze: " + problems(gaps) + chaos.logs()
    skipped = [f"{r.job_name} {r.scheduled_for:%H:%M:%S}: {r.reason}" for r in rows
               if r.state is RunState.SKIPPED]  # fmt: skip
    assert not skipped, "slots skipped: " + problems(skipped)

    # Its runs were retried on the other nodes; each old tree died before its successor.
    lost = [r for r in rows if r.node_id == victim_id and r.state is RunState.LOST]
    retries = [_retry_of(rows, r) for r in lost]
    elsewhere = [
        f"{r.job_name} {r.scheduled_for:%H:%M:%S}: retry {s and watch.names.get(s.node_id)}"  # type: ignore[arg-type]
        for r, s in zip(lost, retries, strict=True)
        if s is None or s.node_id in (None, victim_id)
    ]
    assert not elsewhere, "not retried elsewhere: " + problems(elsewhere)
    overlap = dead_before_retry(chaos.ledger, rows)
    assert not overlap, "old copies outlived the retry: " + problems(overlap) + chaos.logs()

    # After SIGCONT the frozen node wrote nothing: its old runs' rows and output stand, and
    # no process of theirs wrote another line.
    changed = []
    for r in await executions(chaos.store):
        old = before_thaw.get(r.id)
        if old is not None and (old.state, old.finished_at, old.stdout_bytes) != (
            r.state,
            r.finished_at,
            r.stdout_bytes,
        ):
            changed.append(f"{r.job_name} attempt {r.attempt}: {old.state} -> {r.state}")
    for i, data in output_before.items():
        if await stored_output(chaos.store, i) != data:
            changed.append(f"run {i}: output changed after SIGCONT")
    old_runs = {str(i) for i in before_thaw}
    late_lines = [e for e in chaos.ledger.entries() if e.run_id in old_runs and e.at > thaw_wall]
    changed += [f"{e.kind} line of run {e.run_id} {e.at - thaw_wall:.2f}s after SIGCONT"
                for e in late_lines]  # fmt: skip
    assert not changed, "the thawed node still wrote: " + problems(changed) + chaos.logs()
    assert end > thawed_at
