"""Contract: nodes and leases, reaping, output chunks, events and notifications."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from uuid import uuid4

import pytest
from storekit import (
    ALICE,
    BOB,
    NOW,
    SEES_ALICE,
    SEES_BOB,
    StoreFactory,
    at,
    execution,
    finish_one,
    insert_one,
    spec,
)

from cronhive.errors import Conflict, Fenced
from cronhive.model import Event, Execution, Outcome, OutputChunk, RunState, Stream
from cronhive.store import Notification, Store


def retry_at_60(_: Execution) -> datetime | None:
    return at(60)


def chunk(run: Execution, stream: Stream, offset: int, seq: int, data: bytes) -> OutputChunk:
    return OutputChunk(execution_id=run.id, stream=stream, offset=offset, seq=seq, data=data)


async def test_register_renew_list_and_deregister(store: Store) -> None:
    node = await store.register_node(
        name="n1", tags=frozenset({"gpu"}), capacity=4, ttl=30, now=NOW
    )
    assert (node.lease_expires_at, node.alive(at(29)), node.alive(at(30))) == (at(30), True, False)
    await store.enqueue(execution())
    await store.claim(node.id, frozenset(), 1, NOW)
    assert await store.renew_lease(node.id, ttl=30, now=at(20)) == []
    [listed] = await store.list_nodes(now=at(20))
    assert (listed.id, listed.tags, listed.running, listed.lease_expires_at) == (
        node.id,
        frozenset({"gpu"}),
        1,
        at(50),
    )
    with pytest.raises(Conflict, match="1 running"):
        await store.deregister_node(node.id, now=at(21))
    [run] = await store.list_executions(visible_to=None)
    ok = Outcome(state=RunState.SUCCEEDED, exit_code=0, finished_at=at(22))
    await finish_one(store, run.id, node_id=node.id, outcome=ok, retry=retry_at_60)
    await store.deregister_node(node.id, now=at(23))
    # A node that left stays listed, down, so operators see when it went.
    [gone] = await store.list_nodes(now=at(23))
    assert (gone.id, gone.state(at(23)), gone.down_since, gone.down_reason) == (
        node.id,
        "down",
        at(23),
        "left the cluster",
    )
    assert not gone.alive(at(23))
    with pytest.raises(Fenced):
        await store.renew_lease(node.id, ttl=30, now=at(24))


async def test_renew_after_expiry_is_fenced(store: Store) -> None:
    node = await store.register_node(name="n1", tags=frozenset(), capacity=4, ttl=30, now=NOW)
    with pytest.raises(Fenced):
        await store.renew_lease(node.id, ttl=30, now=at(30))
    with pytest.raises(Fenced):
        await store.renew_lease(uuid4(), ttl=30, now=NOW)


async def test_reap_marks_runs_lost_queues_retries_once_and_fences_the_node(
    store: Store,
) -> None:
    node = await store.register_node(name="n1", tags=frozenset(), capacity=4, ttl=30, now=NOW)
    job = await store.create_job(spec(), next_fire_at=None, created_by=ALICE, now=NOW)
    await store.enqueue(execution(job_id=job.id))
    await store.enqueue(execution(owner=BOB))  # ad hoc
    running = await store.claim(node.id, frozenset(), 5, NOW)
    assert await store.reap(now=at(29), retry=retry_at_60) == []  # still alive
    reaped = await asyncio.gather(
        store.reap(now=at(31), retry=retry_at_60), store.reap(now=at(31), retry=retry_at_60)
    )
    lost = [e for r in reaped for e in r]
    assert sorted(e.id for e in lost) == sorted(e.id for e in running)
    assert {(e.state, e.reason, e.finished_at) for e in lost} == {
        (RunState.LOST, "node n1 lease expired", at(31))
    }
    queued = await store.list_executions(visible_to=None, states=[RunState.QUEUED])
    assert sorted((e.owner, e.attempt, e.not_before) for e in queued) == [
        (ALICE, 2, at(60)),
        (BOB, 2, at(60)),
    ]
    assert (await store.get_job(job.id, visible_to=None)).failure_count == 1
    assert {e.kind for e in await store.list_events(visible_to=None)} == {"run.lost"}
    [down] = await store.list_nodes(now=at(31))
    assert (down.id, down.state(at(31)), down.heartbeat_at, down.down_since, down.running) == (
        node.id,
        "down",
        NOW,
        at(31),
        0,
    )
    assert down.down_reason == "node n1 lease expired"
    # The old node's writes are refused from now on.
    ok = Outcome(state=RunState.SUCCEEDED, exit_code=0, finished_at=at(32))
    with pytest.raises(Fenced):
        await finish_one(store, running[0].id, node_id=node.id, outcome=ok, retry=retry_at_60)
    with pytest.raises(Fenced):
        await store.append_output(
            running[0].id, node_id=node.id, chunks=[chunk(running[0], Stream.STDOUT, 0, 0, b"x")]
        )
    with pytest.raises(Fenced):
        await store.renew_lease(node.id, ttl=30, now=at(32))
    assert await store.reap(now=at(99), retry=retry_at_60) == []
    # Down nodes are forgotten after the retention time.
    await store.reap(now=at(99), retry=retry_at_60, keep_down=timedelta(seconds=70))
    assert [n.id for n in await store.list_nodes(now=at(99))] == [node.id]
    await store.reap(now=at(99), retry=retry_at_60, keep_down=timedelta(seconds=60))
    assert await store.list_nodes(now=at(99)) == []


async def test_output_in_seq_order_with_duplicates_ignored(store: Store) -> None:
    node = await store.register_node(name="n1", tags=frozenset(), capacity=4, ttl=30, now=NOW)
    await store.enqueue(execution())
    [run] = await store.claim(node.id, frozenset(), 1, NOW)
    first = [
        chunk(run, Stream.STDOUT, 0, 0, b"hello "),
        chunk(run, Stream.STDERR, 0, 1, b"oops\n"),
        chunk(run, Stream.STDOUT, 6, 2, b"world\n"),
    ]
    await store.append_output(run.id, node_id=node.id, chunks=first)
    await store.append_output(run.id, node_id=node.id, chunks=first[1:])  # a retried batch
    await store.append_output(
        run.id, node_id=node.id, chunks=[chunk(run, Stream.STDOUT, 12, 3, b"\x00\xff")]
    )
    everything = await store.read_output(run.id, streams=[Stream.STDOUT, Stream.STDERR])
    assert [c.seq for c in everything] == [0, 1, 2, 3]
    assert everything[:3] == first
    stdout = await store.read_output(run.id, streams=[Stream.STDOUT], after_seq=0, limit=1)
    assert [(c.seq, c.data) for c in stdout] == [(2, b"world\n")]
    assert await store.read_output(run.id, streams=[Stream.STDERR], after_seq=1) == []
    with pytest.raises(Fenced):
        await store.append_output(run.id, node_id=uuid4(), chunks=first)


async def test_events_are_numbered_and_filtered_by_visibility(store: Store) -> None:
    for owner in (ALICE, BOB, None, ALICE):
        await store.add_event(Event(id=0, at=NOW, kind="job.created", owner=owner, message="m"))
    everything = await store.list_events(visible_to=None)
    assert [e.owner for e in everything] == [ALICE, BOB, None, ALICE]
    ids = [e.id for e in everything]
    assert ids == sorted(ids) and len(set(ids)) == 4
    mine = await store.list_events(visible_to=SEES_ALICE)
    assert [e.id for e in mine] == [ids[0], ids[3]]
    assert [e.id for e in await store.list_events(visible_to=SEES_ALICE, after_id=ids[0])] == [
        ids[3]
    ]
    assert [e.id for e in await store.list_events(visible_to=SEES_BOB, limit=1)] == [ids[1]]


async def _collect(notes: AsyncIterator[Notification], want: set[Notification]) -> None:
    async for note in notes:
        want.discard(note)
        if not want:
            return


async def test_writes_notify_listeners_on_commit(store_factory: StoreFactory) -> None:
    writer, listener = await store_factory(), await store_factory()
    async with listener.listen() as notes:
        node = await writer.register_node(name="n1", tags=frozenset(), capacity=4, ttl=30, now=NOW)
        await writer.create_job(spec(), next_fire_at=None, created_by=ALICE, now=NOW)
        queued = await writer.enqueue(execution())
        [run] = await writer.claim(node.id, frozenset(), 1, NOW)
        await writer.request_stop(run.id, visible_to=None, reason="x", now=NOW)
        await writer.append_output(
            run.id, node_id=node.id, chunks=[chunk(run, Stream.STDOUT, 0, 0, b"x")]
        )
        await writer.add_event(Event(id=0, at=NOW, kind="k", owner=None))
        want = {
            Notification(topic="jobs"),
            Notification(topic="runs"),
            Notification(topic="stop", key=str(queued.id)),
            Notification(topic="output", key=str(queued.id)),
            Notification(topic="events"),
        }
        await asyncio.wait_for(_collect(notes, want), timeout=10)
        assert want == set()


async def test_a_rolled_back_write_notifies_nobody(store_factory: StoreFactory) -> None:
    store = await store_factory()
    async with store.listen() as notes:
        job = await store.create_job(spec(), next_fire_at=NOW, created_by=ALICE, now=NOW)
        with pytest.raises(RuntimeError):
            async with store.firing(NOW, limit=5) as batch:
                await insert_one(batch, execution(job_id=job.id))
                raise RuntimeError("boom")
        await store.add_event(Event(id=0, at=NOW, kind="marker", owner=None))
        seen = []
        async for note in notes:
            seen.append(note.topic)
            if note.topic == "events":
                break
    assert "runs" not in seen
