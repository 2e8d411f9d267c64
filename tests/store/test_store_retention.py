"""Contract: the retention lease, which runs are past the policy, and deleting runs
(with chunks and archive records) and events."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from uuid import UUID, uuid4

import pytest
from storekit import ALICE, NOW, at, execution, finish_one, spec

from cronhive.errors import NotFound
from cronhive.model import Event, Outcome, OutputChunk, RunState, Stream
from cronhive.store import Store

DAY = 86400.0


async def test_one_node_at_a_time_holds_a_task(store: Store) -> None:
    one, two = uuid4(), uuid4()
    assert await store.hold_task("retention", node_id=one, ttl=60, now=NOW)
    assert not await store.hold_task("retention", node_id=two, ttl=60, now=at(30))
    assert await store.hold_task("retention", node_id=one, ttl=60, now=at(30))  # renewed
    assert not await store.hold_task("retention", node_id=two, ttl=60, now=at(89))
    assert await store.hold_task("retention", node_id=two, ttl=60, now=at(90))  # lapsed
    assert await store.hold_task("other", node_id=one, ttl=60, now=at(90))


async def _run(store: Store, job_id: UUID | None, days_ago: float, state: RunState) -> UUID:
    queued = at(-days_ago * DAY)
    ex = replace(
        execution(job_id=job_id, queued_at=queued, scheduled_for=queued, not_before=queued),
        state=state,
    )
    await store.enqueue(ex)
    return ex.id


async def test_expired_runs_keep_each_jobs_newest_and_active_runs(store: Store) -> None:
    job = (await store.create_job(spec("a"), next_fire_at=None, created_by=ALICE, now=NOW)).id
    other = (await store.create_job(spec("b"), next_fire_at=None, created_by=ALICE, now=NOW)).id
    old = [await _run(store, job, 40 + i, RunState.SUCCEEDED) for i in range(3)]
    recent = await _run(store, job, 1, RunState.FAILED)
    lone_old = await _run(store, other, 50, RunState.SUCCEEDED)  # b's newest: stays
    queued_old = await _run(store, job, 45, RunState.QUEUED)  # active: stays
    adhoc_old = await _run(store, None, 60, RunState.SUCCEEDED)
    adhoc_new = await _run(store, None, 2, RunState.SUCCEEDED)

    cutoff = NOW - timedelta(days=30)
    found = await store.expired_runs(older_than=cutoff, keep_per_job=1000, limit=100)
    assert set(found) == {*old, adhoc_old}
    assert await store.expired_runs(older_than=cutoff, keep_per_job=1000, limit=2) == [
        adhoc_old,
        old[2],
    ]  # oldest first, at most `limit`

    # By count: a's two newest stay; past them the ended ones go (the queued one stays).
    long_ago = NOW - timedelta(days=10_000)
    by_count = await store.expired_runs(older_than=long_ago, keep_per_job=2, limit=100)
    assert set(by_count) == set(old[1:])
    by_one = await store.expired_runs(older_than=long_ago, keep_per_job=1, limit=100)
    assert set(by_one) == set(old) and recent not in by_one  # the newest stays
    assert lone_old not in found and queued_old not in found and adhoc_new not in found


async def test_delete_runs_takes_chunks_and_archive_records(store: Store) -> None:
    node = await store.register_node(name="n", tags=frozenset(), capacity=4, ttl=60, now=NOW)
    ex = await store.enqueue(execution())
    [claimed] = await store.claim(node.id, frozenset(), 1, NOW)
    chunk = OutputChunk(execution_id=ex.id, stream=Stream.STDOUT, offset=0, seq=0, data=b"hi")
    await store.append_output(ex.id, node_id=node.id, chunks=[chunk])
    assert await store.delete_runs([claimed.id]) == 0  # running: stays
    await store.request_stop(ex.id, visible_to=None, reason="t", now=NOW)
    outcome = Outcome(state=RunState.STOPPED, finished_at=at(1))
    await finish_one(store, ex.id, node_id=node.id, outcome=outcome, retry=lambda _: None)
    assert await store.archive_output(ex.id, manifest={"streams": {}}, now=at(2))
    assert await store.delete_runs([ex.id]) == 1
    with pytest.raises(NotFound):
        await store.get_execution(ex.id, visible_to=None)
    assert await store.output_archive(ex.id) is None
    assert await store.read_output(ex.id, streams=(Stream.STDOUT,)) == []


async def test_delete_events_oldest_first_in_batches(store: Store) -> None:
    for i in range(5):
        await store.add_event(
            Event(id=0, at=at(-DAY * (40 - i)), kind="run.finished", owner=ALICE, message=str(i))
        )
    await store.add_event(Event(id=0, at=at(-60), kind="run.finished", owner=ALICE, message="new"))
    cutoff = NOW - timedelta(days=30)
    assert await store.delete_events(older_than=cutoff, limit=3) == 3
    assert await store.delete_events(older_than=cutoff, limit=3) == 2
    assert await store.delete_events(older_than=cutoff, limit=3) == 0
    left = await store.list_events(visible_to=None)
    assert [e.message for e in left] == ["new"]
