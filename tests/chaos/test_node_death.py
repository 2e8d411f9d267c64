"""A node that dies (SIGKILL) or is shut down (SIGTERM) mid-run (issue 10): its run moves
to another node at once, with or without retries of its own; a dead node stays listed."""

from __future__ import annotations

import asyncio
import json
import re
import time
from datetime import UTC, datetime, timedelta

import pytest
from chaoskit import Chaos, dead_before_retry, executions, problems, wait_for

from cronhive.model import Execution, Job, RetryPolicy, RunState

TTL = 2.0


async def _running_once(chaos: Chaos, job: Job) -> Execution:
    async def started() -> bool:
        return any(r.state is RunState.RUNNING for r in await executions(chaos.store, job.id))

    await wait_for(started, within=30, what=f"{job.name} running")
    [run] = await executions(chaos.store, job.id)
    return run


async def _started(chaos: Chaos, job: Job, attempt: int, within: float) -> float:
    """Waits for `attempt` of `job` to start; the seconds it took."""

    async def started() -> bool:
        again = await _attempt(chaos, job, attempt)
        return again is not None and again.started_at is not None

    try:
        return await wait_for(started, within=within, what=f"attempt {attempt} started")
    except AssertionError:
        rows = await executions(chaos.store, job.id)
        raise AssertionError(
            f"no attempt {attempt} started within {within:g}s: "
            f"{[(r.attempt, str(r.state), r.reason, f'{r.not_before:%T.%f}') for r in rows]}"
            f"\n{chaos.logs()}"
        ) from None


async def _attempt(chaos: Chaos, job: Job, attempt: int) -> Execution | None:
    for r in await executions(chaos.store, job.id):
        if r.attempt == attempt:
            return r
    return None


@pytest.mark.slow
@pytest.mark.timeout(90)
@pytest.mark.parametrize("retries", [2, 0], ids=["retries-2", "no-retries"])
async def test_sigkilled_nodes_run_is_retried_at_once_on_another_node(
    chaos: Chaos, retries: int
) -> None:
    """Default retry settings (10 s delay with jitter): a lost run is not the job's failure,
    so neither its backoff nor its retry count applies."""
    nodes = {n.name: n for n in chaos.start_nodes(["a", "b"], lease_ttl=TTL)}
    ids = await chaos.wait_joined(nodes)
    job = await chaos.create_job(
        chaos.ledger.ticking(30), name="long", retry=RetryPolicy(max_retries=retries)
    )
    await chaos.trigger(job)
    first = await _running_once(chaos, job)
    [victim] = [name for name, i in ids.items() if i == first.node_id]
    await asyncio.sleep(0.5)  # it ticks
    killed_at = datetime.now(UTC)
    nodes[victim].kill()

    took = await _started(chaos, job, 2, within=TTL + 20)
    lost, again = await _attempt(chaos, job, 1), await _attempt(chaos, job, 2)
    assert lost is not None and again is not None
    assert lost.state is RunState.LOST, (lost.state, lost.reason)
    assert again.node_id not in (None, first.node_id), "retried on the dead node"
    # Retried at once: no backoff between the loss and the retry being claimable.
    assert lost.finished_at is not None
    backoff = (again.not_before - lost.finished_at).total_seconds()
    assert backoff <= 0.5, f"the lost run's retry waited {backoff:.1f}s of backoff ({took:.1f}s)"
    assert again.started_at is not None and again.started_at >= killed_at - timedelta(seconds=1)
    # And the old copy (an orphan of the dead node) was dead before the retry started.
    await asyncio.sleep(0.5)
    overlap = dead_before_retry(chaos.ledger, await executions(chaos.store, job.id))
    assert not overlap, "the dead node's run outlived it: " + problems(overlap)


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_sigterm_drains_hands_a_long_run_over_and_exits_0(chaos: Chaos) -> None:
    drain = {"drain_grace": 3.0}  # (default 10 s) for runs to end before the hand-over
    nodes = {n.name: n for n in chaos.start_nodes(["a", "b"], lease_ttl=TTL, settings=drain)}
    ids = await chaos.wait_joined(nodes)
    job = await chaos.create_job(chaos.ledger.ticking(60), name="sixty")  # no retries
    await chaos.trigger(job)
    first = await _running_once(chaos, job)
    [victim] = [name for name, i in ids.items() if i == first.node_id]
    [other] = [name for name in nodes if name != victim]
    await asyncio.sleep(0.5)
    nodes[victim].terminate()
    # The drain grace, then the hand-over: bounded, generously.
    rc = await nodes[victim].exited(60)
    log = nodes[victim].log_text()
    assert rc == 0, f"exit {rc}\n{log[-3000:]}"

    await _started(chaos, job, 2, within=TTL + 20)
    lost, again = await _attempt(chaos, job, 1), await _attempt(chaos, job, 2)
    assert lost is not None and again is not None
    assert lost.state is RunState.LOST, f"{lost.state}: {lost.reason} (not a person's stop)"
    assert again.node_id == ids[other]
    # The log tells the operator each step, in order: draining, hand-over, exit.
    steps = [r"drain", r"hand(ed|ing|s)?[ -]?over", r"exit|stopped|left the cluster"]
    at = 0
    for step in steps:
        m = re.compile(step, re.IGNORECASE).search(log, at)
        assert m is not None, f"no {step!r} in the log after offset {at}:\n{log[-3000:]}"
        at = m.end()
    overlap = dead_before_retry(chaos.ledger, await executions(chaos.store, job.id))
    assert not overlap, "the old copy outlived the hand-over: " + problems(overlap)


@pytest.mark.slow
@pytest.mark.timeout(90)
async def test_nodes_json_lists_a_sigkilled_node_as_down_with_its_last_heartbeat(
    chaos: Chaos,
) -> None:
    nodes = {n.name: n for n in chaos.start_nodes(["a", "b"], lease_ttl=TTL)}
    await chaos.wait_joined(nodes)
    await asyncio.sleep(TTL)  # a heartbeat or two
    killed_at = time.time()
    nodes["a"].kill()
    # Past the point where dead nodes used to vanish (~6 s after death).
    await asyncio.sleep(3 * TTL + 6)
    done = nodes["b"].cli("nodes", "--json")
    assert done.returncode == 0, done.stderr
    listed = json.loads(done.stdout)
    mine = [n for n in listed if n["name"] == "a"]
    assert mine, f"the dead node is not listed: {listed}"
    [dead] = mine
    assert "down" in dead.values() and dead.get("alive") is not True, dead
    beat = datetime.fromisoformat(dead["heartbeat_at"]).timestamp()
    assert killed_at - TTL - 1 <= beat <= killed_at + 0.5, (dead, killed_at)
    [alive] = [n for n in listed if n["name"] == "b"]
    assert alive.get("alive") is True and "down" not in alive.values(), alive
