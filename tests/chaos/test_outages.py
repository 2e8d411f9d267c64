"""PostgreSQL going away under a running cluster (issue 11): restarts, terminated
sessions, a node started before its database. Firing resumes, no slot doubles, no byte
of output is lost or stored twice, every run ends in the right state."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from chaoskit import (
    Chaos,
    at_most_once,
    executions,
    fresh_store,
    printed_wrong,
    printing_jobs,
    problems,
    quick_jobs,
    skipped_outside,
    slot_problems,
    wait_for,
    wait_printed,
)

from cronhive.model import RunState

TTL = 3.0


@pytest.mark.slow
@pytest.mark.timeout(150)
async def test_postgres_restarted_twice_mid_run_loses_and_doubles_nothing(chaos: Chaos) -> None:
    chaos.start_nodes(["a", "b"], lease_ttl=TTL)
    await chaos.wait_joined(["a", "b"])
    quick = await quick_jobs(chaos, 20)
    printers = await printing_jobs(chaos, 6, lines=20, every=1.0)
    await asyncio.sleep(4)
    outages = [chaos.pg.restart("fast")]
    await asyncio.sleep(5)
    outages.append(chaos.pg.restart("fast"))
    async with fresh_store(chaos.url) as store:
        await wait_printed(store, printers, within=60)
        end = datetime.now(UTC)
        ledger = chaos.ledger.freeze()  # before the rows: the jobs are still firing
        rows = await executions(store)
        twice = at_most_once(ledger, rows)
        assert not twice, "slots doubled: " + problems(twice) + chaos.logs()
        gaps = await slot_problems(store, quick, end - timedelta(seconds=2))
        assert not gaps, f"outages {outages}: " + problems(gaps) + chaos.logs()
        skipped = skipped_outside(list(rows), outages)
        assert not skipped, f"outages {outages}: " + problems(skipped)
        wrong = await printed_wrong(store, printers, lines=20)
        assert not wrong, "output or state wrong: " + problems(wrong) + chaos.logs()


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_sessions_terminated_five_times_lose_nothing(chaos: Chaos) -> None:
    chaos.start_nodes(["a", "b"], lease_ttl=TTL)
    await chaos.wait_joined(["a", "b"])
    quick = await quick_jobs(chaos, 10)
    printers = await printing_jobs(chaos, 4, lines=16, every=0.5)
    await asyncio.sleep(2)
    terminated = []
    for _ in range(5):
        terminated.append(chaos.pg.terminate_backends())
        await asyncio.sleep(1.2)
    async with fresh_store(chaos.url) as store:
        await wait_printed(store, printers, within=60)
        end = datetime.now(UTC)
        ledger = chaos.ledger.freeze()  # before the rows: the jobs are still firing
        rows = await executions(store)
        assert sum(terminated) >= 5, f"terminated {terminated}: the nodes had no sessions?"
        lost = [f"{r.job_name}: {r.state} {r.reason}" for r in rows
                if r.state in (RunState.LOST, RunState.SKIPPED, RunState.FAILED)]  # fmt: skip
        assert not lost, "lost to terminated sessions: " + problems(lost) + chaos.logs()
        twice = at_most_once(ledger, rows)
        assert not twice, "slots doubled: " + problems(twice)
        gaps = await slot_problems(store, quick, end - timedelta(seconds=2))
        assert not gaps, problems(gaps) + chaos.logs()
        wrong = await printed_wrong(store, printers, lines=16)
        assert not wrong, "output or state wrong: " + problems(wrong) + chaos.logs()


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_node_started_before_its_database_joins_when_it_comes_up(chaos: Chaos) -> None:
    job = await chaos.create_job(chaos.ledger.quick(), name="q", schedule="every 1s")
    chaos.pg.stop("fast")
    node = chaos.node("early", lease_ttl=TTL).start()
    await asyncio.sleep(4)
    assert node.alive(), f"the node gave up on its database:\n{node.log_text()[-3000:]}"
    chaos.pg.start()
    up = datetime.now(UTC)
    async with fresh_store(chaos.url) as store:
        chaos.store = store
        await chaos.wait_joined(["early"], within=30)

        async def fired_since_up() -> bool:
            rows = await executions(store, job.id)
            return any(r.scheduled_for >= up and r.state is RunState.SUCCEEDED for r in rows)

        await wait_for(fired_since_up, within=30, what="a slot fired after the database came up")
    log = node.log_text()
    assert "Traceback" not in log, log[-3000:]
    # One log line per state change, not one per attempt.
    waits = [line for line in log.splitlines() if "database" in line.lower()]
    assert len(waits) <= 10, "\n".join(waits[:20])
