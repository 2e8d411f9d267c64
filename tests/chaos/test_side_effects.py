"""What the commands really did, from a ledger they append to outside cronhive (issue 10,
Side effects): under SIGKILL, SIGSTOP and restarts every (job, slot, attempt) ran at most
once, and every attempt > 1 follows one recorded lost or failed."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from chaoskit import (
    Chaos,
    NodeWatch,
    at_most_once,
    environment_matches,
    executions,
    problems,
    retries_follow_loss,
)

from cronhive.model import RetryPolicy, RunState

TTL = 2.0


@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_every_attempt_runs_at_most_once_under_kills_freezes_and_restarts(
    chaos: Chaos,
) -> None:
    nodes = {n.name: n for n in chaos.start_nodes(["a", "b", "c"], lease_ttl=TTL, capacity=16)}
    await chaos.wait_joined(nodes)
    with NodeWatch(chaos.store) as watch:
        first = datetime.now(UTC) + timedelta(seconds=2)
        for i in range(20):
            await chaos.create_job(
                chaos.ledger.quick(), name=f"q{i:02}", schedule="every 1s", first_at=first
            )
        # Failing every time, retried at once: attempts > 1 after failures too.
        failing = (*chaos.ledger.quick()[:2], chaos.ledger.quick()[2] + "; exit 3")
        for i in range(3):
            await chaos.create_job(
                failing,
                name=f"fail-{i}",
                schedule="every 2s",
                retry=RetryPolicy(max_retries=1, delay=0.05),
                first_at=first,
            )
        long_jobs = [
            await chaos.create_job(
                chaos.ledger.ticking(4),
                name=f"long-{i}",
                schedule="every 3s",
                retry=RetryPolicy(max_retries=3, delay=0.05),
                first_at=first,
            )
            for i in range(4)
        ]
        assert long_jobs
        await asyncio.sleep(4)
        killed = [(await chaos.wait_joined(["a"]))["a"]]
        nodes["a"].kill()  # SIGKILL, and back a second later
        await asyncio.sleep(1)
        nodes["a"].start()
        await asyncio.sleep(2)
        nodes["b"].freeze()  # SIGSTOP past its lease
        await asyncio.sleep(2 * TTL + 1)
        nodes["b"].thaw()
        await asyncio.sleep(2)
        nodes["c"].terminate()  # a restart by the service manager
        await nodes["c"].exited(60)
        nodes["c"].start()
        await asyncio.sleep(2)
        killed.append((await chaos.wait_joined(["b"]))["b"])
        nodes["b"].kill()
        nodes["b"].start()
        await asyncio.sleep(5)  # calm: retries run, the cluster settles
        await watch.sample()

    ledger = chaos.ledger.freeze()  # before the rows: the jobs are still firing
    rows = await executions(chaos.store)
    twice = at_most_once(ledger, rows)
    assert not twice, "commands ran twice: " + problems(twice) + chaos.logs()
    unfounded = retries_follow_loss(rows)
    assert not unfounded, "retries without a loss or failure: " + problems(unfounded)
    assert any(r.attempt > 1 for r in rows), "the faults caused no retry at all"
    # A run whose command ended is never declared lost (its end is durable before its
    # lease can lapse, or the reaper sees it), unless its node died with it (SIGKILL).
    lines = ledger.by_run()
    ended_then_lost = [
        f"{r.job_name} {r.scheduled_for:%H:%M:%S} attempt {r.attempt} on "
        f"{watch.names.get(r.node_id)}: ended, then recorded lost ({r.reason})"  # type: ignore[arg-type]
        for r in rows
        if r.state is RunState.LOST
        and r.node_id not in killed
        and any(e.kind in ("run", "end") for e in lines.get(str(r.id), []))
    ]
    env = environment_matches(ledger, rows, watch.names)
    assert not env, "the run's environment does not say what ran: " + problems(env)
    if ended_then_lost:
        # Known limit, kept visible (docs/cluster.md, "what once means"): the supervisor
        # vouches for a frozen node's ends, but not for one reaped in the instant
        # before the node froze, nor when its write misses the lease (a loaded
        # database). Each (job, slot, attempt) still ran at most once.
        supervised = "\n".join(
            line
            for n in chaos.nodes
            for line in n.log_text().splitlines()
            if "supervisor" in line or "lease" in line or "fenced" in line
        )
        pytest.xfail(
            "ended, then recorded lost (node frozen at the end): "
            + problems(ended_then_lost)
            + "\n"
            + supervised
        )
