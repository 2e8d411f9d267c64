"""A node whose connection to PostgreSQL hangs (a proxy that stops forwarding without
closing anything) must kill its own runs before the cluster starts their next attempt
(issue 10, Hung connection): fencing needs no answer from the database."""

from __future__ import annotations

import asyncio

import pytest
from _shared.proxy import TcpProxy
from chaoskit import Chaos, dead_before_retry, executions, problems, wait_for

from cronhive.model import RetryPolicy, RunState

TTL = 2.0


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_node_on_a_hung_connection_kills_its_runs_before_their_retries_start(
    chaos: Chaos,
) -> None:
    proxy = TcpProxy(chaos.pg.port)
    try:
        hung = chaos.node("hung", db=chaos.url.replace(str(chaos.pg.port), str(proxy.port)))
        hung.settings.update(lease_ttl=TTL, grace=1.0)
        hung.start()
        ids = await chaos.wait_joined(["hung"])
        jobs = [
            await chaos.create_job(
                chaos.ledger.ticking(25),
                name=f"long-{i}",
                retry=RetryPolicy(max_retries=2, delay=0.05),
            )
            for i in range(3)
        ]
        for job in jobs:
            await chaos.trigger(job)

        async def running_on_hung() -> bool:
            rows = [r for j in jobs for r in await executions(chaos.store, j.id)]
            return all(r.state is RunState.RUNNING and r.node_id == ids["hung"] for r in rows)

        await wait_for(running_on_hung, within=30, what="the runs started on node hung")
        chaos.node("ok", lease_ttl=TTL, grace=1.0).start()
        ok_id = (await chaos.wait_joined(["ok"]))["ok"]
        await asyncio.sleep(1.0)  # both nodes renewing; the ticks flowing
        proxy.stall()

        async def retried_on_ok() -> bool:
            rows = [r for j in jobs for r in await executions(chaos.store, j.id)]
            return sum(r.attempt == 2 and r.node_id == ok_id and r.started_at is not None
                       for r in rows) == len(jobs)  # fmt: skip

        await wait_for(retried_on_ok, within=TTL + 20, what="the runs retried on node ok")
        await asyncio.sleep(1.0)  # any old copy still alive ticks on meanwhile
        rows = [r for j in jobs for r in await executions(chaos.store, j.id)]
        firsts = [r for r in rows if r.attempt == 1]
        assert all(r.state is RunState.LOST for r in firsts), [(r.state, r.reason) for r in firsts]
        overlap = dead_before_retry(chaos.ledger, rows)
        assert not overlap, "old copies outlived their retry: " + problems(overlap) + chaos.logs()
    finally:
        proxy.close()
