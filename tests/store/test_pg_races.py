"""Races between nodes on one real PostgreSQL database (two Store instances = two nodes)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from storekit import ALICE, NOW, at, execution, spec

from cronhive.model import Execution, RunState
from cronhive.store import Store, open_store

pytestmark = pytest.mark.postgres


@pytest.fixture
async def two(pg_url: str) -> AsyncIterator[tuple[Store, Store]]:
    a, b = await open_store(pg_url), await open_store(pg_url)
    yield a, b
    await a.close()
    await b.close()


async def _fire(store: Store, barrier: asyncio.Barrier) -> int:
    """One scheduler tick as the scheduler makes it: the due slot of every job in one
    insert, then every job advanced in one statement."""
    async with store.firing(NOW, limit=100) as batch:
        await barrier.wait()  # both ticks hold their transaction at the same moment
        slots = [execution(job_id=job.id, scheduled_for=NOW) for job in batch.jobs]
        inserted = await batch.insert_many(slots)
        await batch.advance_many([(job.id, at(60)) for job in batch.jobs])
    return len(inserted)


async def test_two_nodes_firing_at_once_make_one_execution_per_slot(
    two: tuple[Store, Store],
) -> None:
    a, b = two
    for i in range(20):
        await a.create_job(spec(f"j{i}"), next_fire_at=NOW, created_by=ALICE, now=NOW)
    barrier = asyncio.Barrier(2)
    counts = await asyncio.gather(_fire(a, barrier), _fire(b, barrier))
    assert sum(counts) == 20
    runs = await a.list_executions(visible_to=None, limit=1000)
    assert len(runs) == 20 and len({r.job_id for r in runs}) == 20
    assert await a.next_fire_at() == at(60)


async def test_the_same_slot_inserted_by_two_stores_is_stored_once(
    two: tuple[Store, Store],
) -> None:
    a, b = two
    job = await a.create_job(spec(), next_fire_at=NOW, created_by=ALICE, now=NOW)
    # Past SKIP LOCKED (the second batch does not see the locked job): only the unique
    # constraint stands between the two inserts.
    async with a.firing(NOW, limit=10) as first:
        assert len(await first.insert_many([execution(job_id=job.id)])) == 1
    async with b.firing(NOW, limit=10) as second:
        assert await second.insert_many([execution(job_id=job.id)]) == set()
    assert len(await b.list_executions(visible_to=None)) == 1


async def _claim_all(store: Store, node_id: object) -> list[Execution]:
    got: list[Execution] = []
    while batch := await store.claim(node_id, frozenset(), 7, NOW):  # type: ignore[arg-type]
        got.extend(batch)
    return got


async def test_two_claimers_never_take_the_same_execution(two: tuple[Store, Store]) -> None:
    a, b = two
    for i in range(200):
        await a.enqueue(execution(queued_at=at(i / 1000)))
    na = await a.register_node(name="a", tags=frozenset(), capacity=999, ttl=60, now=NOW)
    nb = await b.register_node(name="b", tags=frozenset(), capacity=999, ttl=60, now=NOW)
    got_a, got_b = await asyncio.gather(_claim_all(a, na.id), _claim_all(b, nb.id))
    ids_a, ids_b = {e.id for e in got_a}, {e.id for e in got_b}
    assert len(ids_a) + len(ids_b) == 200 and not ids_a & ids_b
    assert all(e.node_id == na.id for e in got_a) and all(e.node_id == nb.id for e in got_b)


async def test_two_reapers_on_two_nodes_queue_each_retry_once(two: tuple[Store, Store]) -> None:
    a, b = two
    dead = await a.register_node(name="dead", tags=frozenset(), capacity=99, ttl=10, now=NOW)
    for _ in range(30):
        await a.enqueue(execution())
    running = await a.claim(dead.id, frozenset(), 30, NOW)
    reaped = await asyncio.gather(
        a.reap(now=at(11), retry=lambda _: at(20)), b.reap(now=at(11), retry=lambda _: at(20))
    )
    assert sorted(e.id for r in reaped for e in r) == sorted(e.id for e in running)
    queued = await a.list_executions(visible_to=None, states=[RunState.QUEUED], limit=1000)
    assert len(queued) == 30 and {e.attempt for e in queued} == {2}
