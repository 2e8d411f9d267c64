"""The lease keeper: renewal on a thread of its own keeps a busy node's lease, a stuck
node still loses its runs, and a slow stop never costs the lease."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from _shared import procs
from enginekit import adhoc, running_node, wait_for

from cronhive.engine.node import NodeProcess
from cronhive.model import Execution, RunState
from cronhive.store import Store

TTL = 3.0  # renewal every 1 s; the runs die 2.4 s after the last renewal began


async def _state(store: Store, run: Execution) -> RunState:
    return (await store.get_execution(run.id, visible_to=None)).state


async def _ended(store: Store, run: Execution, within: float = 30.0) -> RunState:
    async def done() -> bool:
        return (await _state(store, run)).terminal

    await wait_for(done, within=within)
    return await _state(store, run)


async def _hog(seconds: float, *, blocked: float, between: float) -> None:
    """Keeps this event loop busy: `blocked` seconds of synchronous work, then a short
    turn for everything else, for `seconds`."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(blocked)  # the loop's other tasks wait all this time
        await asyncio.sleep(between)


async def test_a_busy_loop_keeps_its_lease(store: Store, tmp_path: Path) -> None:
    async with running_node(store, tmp_path, lease_ttl=TTL, keeper=True) as node:
        first = node.node.id
        run = await store.enqueue(adhoc(("sleep", "6"), datetime.now(UTC)))
        await wait_for(lambda: _running(store, run))
        # Most of each second blocked: a renewal awaited on this loop, a few round trips
        # each waiting for a turn, would come after the deadline.
        await _hog(7.0, blocked=0.8, between=0.02)
        assert await _ended(store, run) is RunState.SUCCEEDED
        assert node.node.id == first  # never fenced, never registered again
        attempts = await store.list_executions(visible_to=None, limit=10)
        assert [e.attempt for e in attempts] == [1]


async def test_a_stuck_loop_loses_its_runs(store: Store, tmp_path: Path) -> None:
    async with running_node(store, tmp_path, lease_ttl=TTL, keeper=True) as node:
        run = await store.enqueue(adhoc(("sleep", "60"), datetime.now(UTC)))
        await wait_for(lambda: _running(store, run))
        pid = _pid(node, run)
        # The whole loop stuck: the keeper stops renewing after two leases, the runs die
        # at the deadline after the last renewal.
        time.sleep(TTL * 3.5)
        assert not procs.alive(pid), "the supervisor let a stuck node's run live past the lease"
        assert await _ended(store, run) is RunState.LOST


@pytest.mark.parametrize("keeper", [False, True], ids=["own-loop", "keeper"])
async def test_a_slow_stop_does_not_cost_the_lease(
    store: Store, tmp_path: Path, keeper: bool
) -> None:
    async with running_node(store, tmp_path, lease_ttl=TTL, grace=8.0, keeper=keeper) as node:
        first = node.node.id
        stubborn = await store.enqueue(
            adhoc(("sh", "-c", "trap '' TERM; sleep 30"), datetime.now(UTC))
        )
        other = await store.enqueue(adhoc(("sleep", "7"), datetime.now(UTC)))
        await wait_for(lambda: _running(store, stubborn))
        await wait_for(lambda: _running(store, other))
        await store.request_stop(stubborn.id, visible_to=None, reason="test", now=node.clock.now())
        # The stop takes its whole 8 s grace; renewals go on meanwhile.
        assert await _ended(store, other) is RunState.SUCCEEDED
        assert await _ended(store, stubborn) is RunState.STOPPED
        assert node.node.id == first


async def _running(store: Store, run: Execution) -> bool:
    return await _state(store, run) is RunState.RUNNING


def _pid(node: NodeProcess, run: Execution) -> int:
    pid = node.runner.get(str(run.id)).pid
    assert pid is not None
    return pid
