"""No deadlocks (issue 10): the reaper and the finisher lock rows in one global order,
so reaping a dead node's runs while the others finish runs of the same jobs never
deadlocks (pg_stat_database.deadlocks of the test database does not grow)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from chaoskit import Chaos

TTL = 1.5


@pytest.mark.slow
@pytest.mark.timeout(150)
async def test_reaping_while_others_finish_runs_of_the_same_jobs_never_deadlocks(
    chaos: Chaos,
) -> None:
    nodes = chaos.start_nodes(["a", "b", "c"], lease_ttl=TTL, capacity=60)
    await chaos.wait_joined(n.name for n in nodes)
    before = chaos.pg.deadlocks()
    first = datetime.now(UTC) + timedelta(seconds=2)
    sh, c, line = chaos.ledger.quick()
    for i in range(60):
        # Runs of every job in flight on every node at once, ending all the time.
        await chaos.create_job(
            (sh, c, f"{line}; sleep 2"), name=f"j{i:02}", schedule="every 1s", first_at=first
        )
    await asyncio.sleep(4)
    for victim in [nodes[0], nodes[1]] * 3:
        victim.kill()  # its ~30 running runs are reaped while the others finish theirs
        await asyncio.sleep(TTL + 1)
        victim.start()
    await asyncio.sleep(2)
    after = chaos.pg.deadlocks()
    assert after == before, (
        f"pg_stat_database.deadlocks grew {before} -> {after}:\n"
        + "\n".join(chaos.deadlock_reports()[:5])
        + chaos.logs()
    )
