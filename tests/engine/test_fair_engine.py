"""Fair claiming on a real node (`cronhive server`, default policy, sandboxed runs) over
PostgreSQL: one owner's long queue does not hold back another owner's next run."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from uuid import UUID

import pytest
from enginekit import executions_of, node_logs, spawn_node, terminal, wait_for

from cronhive.engine import executions as new
from cronhive.model import RunSpec, RunState
from cronhive.store import Store, open_store

CAPACITY = 4


@pytest.fixture
async def pg_store(pg_database: Callable[[str | None], str]) -> AsyncIterator[Store]:
    store = await open_store(pg_database(None))
    yield store
    await store.close()


@pytest.fixture
def node_procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for p in procs:
        if p.poll() is None:
            os.kill(p.pid, signal.SIGTERM)
        p.wait(30)


async def _enqueue(store: Store, owner: str, command: tuple[str, ...]) -> UUID:
    now = await store.database_time()  # the cluster's clock, as the node's claims use
    execution = await store.enqueue(new.adhoc(owner, RunSpec(command=command), now))
    return execution.id


@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_bobs_100_queued_runs_delay_alices_next_run_by_at_most_one_start(
    pg_store: Store, tmp_path: Path, node_procs: list[subprocess.Popen[bytes]]
) -> None:
    url: str = pg_store.url  # type: ignore[attr-defined]
    node_procs.append(spawn_node(url, tmp_path, "n1", capacity=CAPACITY))
    bobs = [await _enqueue(pg_store, "user:bob", ("sleep", "0.3")) for _ in range(100)]

    async def busy() -> bool:  # the node is full of bob's runs, the rest of them wait
        rows = await executions_of(pg_store)
        return sum(r.state is RunState.RUNNING for r in rows) == CAPACITY

    await wait_for(busy, within=60)
    alices = await _enqueue(pg_store, "user:alice", ("true",))
    await wait_for(lambda: terminal(pg_store, alices), within=60)
    node_procs[0].send_signal(signal.SIGTERM)
    assert node_procs[0].wait(60) == 0, node_logs(tmp_path)

    rows = {r.id: r for r in await executions_of(pg_store)}
    alice = rows[alices]
    assert alice.state is RunState.SUCCEEDED, node_logs(tmp_path)
    assert alice.started_at is not None
    # Bob's runs that started while alice's waited: at most one (the claim that was
    # under way when hers was queued may still take his).
    overtook = [
        b
        for b in (rows[i] for i in bobs)
        if b.started_at is not None and alice.queued_at < b.started_at < alice.started_at
    ]
    assert len(overtook) <= 1, [(b.started_at, alice.started_at) for b in overtook]
    # ... while most of bob's queue was still waiting when alice's started.
    later = [
        b
        for b in (rows[i] for i in bobs)
        if b.started_at is None or b.started_at > alice.started_at
    ]
    assert len(later) >= 50
