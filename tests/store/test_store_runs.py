"""Contract: firing, enqueue, claiming, finishing, stopping and listing executions."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from uuid import uuid4

import pytest
from storekit import (
    ALICE,
    BOB,
    NOW,
    SEES_ALICE,
    SEES_BOB,
    at,
    execution,
    finish_one,
    insert_one,
    spec,
)

from cronhive.errors import Conflict, Fenced, NotFound
from cronhive.model import Execution, Outcome, OutputChunk, RetryPolicy, RunState, Stream
from cronhive.store import Finish, Store


def no_retry(_: Execution) -> datetime | None:
    return None


def retry_in_10s(ex: Execution) -> datetime | None:
    assert ex.finished_at is not None
    return ex.finished_at.replace(second=ex.finished_at.second + 10)


async def test_firing_takes_due_enabled_jobs_oldest_first_up_to_limit(store: Store) -> None:
    for name, due, enabled in (("b", at(-10), True), ("a", at(-20), True), ("c", at(0), True)):
        await store.create_job(
            spec(name, enabled=enabled), next_fire_at=due, created_by=ALICE, now=NOW
        )
    await store.create_job(spec("later"), next_fire_at=at(1), created_by=ALICE, now=NOW)
    await store.create_job(
        spec("paused", enabled=False), next_fire_at=at(-99), created_by=ALICE, now=NOW
    )
    await store.create_job(spec("never"), next_fire_at=None, created_by=ALICE, now=NOW)
    async with store.firing(NOW, limit=2) as batch:
        assert [j.name for j in batch.jobs] == ["a", "b"]
    async with store.firing(NOW, limit=10) as batch:
        assert [j.name for j in batch.jobs] == ["a", "b", "c"]
    assert await store.next_fire_at() == at(-20)


async def test_firing_inserts_and_advances_many_at_once(store: Store) -> None:
    a = await store.create_job(spec("a"), next_fire_at=NOW, created_by=ALICE, now=NOW)
    b = await store.create_job(spec("b"), next_fire_at=NOW, created_by=ALICE, now=NOW)
    taken = await store.enqueue(execution(job_id=a.id))
    fresh = [
        execution(job_id=a.id),  # the slot `taken` holds: left out
        execution(job_id=b.id),
        execution(job_id=b.id, scheduled_for=at(1)),
        execution(job_id=b.id, scheduled_for=at(2), state=RunState.SKIPPED),
    ]
    async with store.firing(NOW, limit=10) as batch:
        assert await batch.insert_many([]) == set()
        assert await batch.insert_many(fresh) == {e.id for e in fresh[1:]}
        await batch.advance_many([(a.id, at(60)), (b.id, None)])
        await batch.advance_many([])
    assert (await store.get_job(a.id, visible_to=None)).next_fire_at == at(60)
    assert (await store.get_job(b.id, visible_to=None)).next_fire_at is None
    stored = await store.list_executions(visible_to=None)
    assert {e.id for e in stored} == {taken.id} | {e.id for e in fresh[1:]}
    assert await store.get_execution(fresh[1].id, visible_to=None) == fresh[1]


async def test_firing_inserts_each_slot_once_and_advances(store: Store) -> None:
    job = await store.create_job(spec(), next_fire_at=NOW, created_by=ALICE, now=NOW)
    slot = execution(job_id=job.id)
    async with store.firing(NOW, limit=10) as batch:
        [due] = batch.jobs
        assert await batch.active_runs([due.id]) == {due.id: []}
        assert await insert_one(batch, slot)
        assert not await insert_one(batch, execution(job_id=job.id))  # same slot, new id
        assert (await batch.active_runs([due.id]))[due.id] == [slot]
        await batch.advance_many([(job.id, at(60))])
    assert (await store.get_job(job.id, visible_to=None)).next_fire_at == at(60)
    async with store.firing(NOW, limit=10) as batch:
        assert batch.jobs == []
    assert await store.list_executions(visible_to=None, job_id=job.id) == [slot]
    with pytest.raises(Conflict):
        await store.enqueue(execution(job_id=job.id))
    retry = await store.enqueue(execution(job_id=job.id, attempt=2))
    assert retry.attempt == 2


async def test_a_failing_batch_changes_nothing(store: Store) -> None:
    job = await store.create_job(spec(), next_fire_at=NOW, created_by=ALICE, now=NOW)
    with pytest.raises(RuntimeError):
        async with store.firing(NOW, limit=10) as batch:
            await insert_one(batch, execution(job_id=job.id))
            await batch.advance_many([(job.id, at(60))])
            raise RuntimeError("engine bug")
    assert (await store.get_job(job.id, visible_to=None)).next_fire_at == NOW
    assert await store.list_executions(visible_to=None) == []


async def test_batch_fast_path_claims_and_stops(store: Store) -> None:
    node = await store.register_node(name="n", tags=frozenset(), capacity=4, ttl=30, now=NOW)
    job = await store.create_job(spec(), next_fire_at=NOW, created_by=ALICE, now=NOW)
    old = await store.enqueue(execution(job_id=job.id, scheduled_for=at(-60)))
    [old_running] = await store.claim(node.id, frozenset(), 1, NOW)
    assert old_running.id == old.id
    new = execution(job_id=job.id)
    async with store.firing(NOW, limit=10) as batch:
        active = await batch.active_runs([job.id])
        assert [e.id for e in active[job.id]] == [old.id]
        await batch.request_stop(old.id, "replaced by a newer run")
        assert await insert_one(batch, new)
        [claimed] = await batch.claim([new.id], node.id, NOW)
    assert (claimed.id, claimed.state, claimed.node_id, claimed.started_at) == (
        new.id,
        RunState.RUNNING,
        node.id,
        NOW,
    )
    assert (await store.get_execution(old.id, visible_to=None)).stop_requested


async def test_claim_takes_only_runs_whose_tags_are_a_subset(store: Store) -> None:
    node = await store.register_node(
        name="n", tags=frozenset({"gpu", "eu"}), capacity=9, ttl=30, now=NOW
    )
    plain = await store.enqueue(execution(queued_at=at(-3), not_before=at(-3)))
    gpu = await store.enqueue(execution(tags=frozenset({"gpu"}), not_before=at(-2)))
    both = await store.enqueue(execution(tags=frozenset({"gpu", "eu"}), not_before=at(-1)))
    await store.enqueue(execution(tags=frozenset({"gpu", "us"})))
    await store.enqueue(execution(tags=frozenset({"arm"})))
    claimed = await store.claim(node.id, frozenset({"gpu", "eu"}), 10, NOW)
    assert [e.id for e in claimed] == [plain.id, gpu.id, both.id]  # oldest first
    assert all(e.state is RunState.RUNNING and e.node_id == node.id for e in claimed)
    assert await store.claim(node.id, frozenset({"gpu", "eu"}), 10, NOW) == []
    # A node without tags takes only untagged runs.
    bare = await store.enqueue(execution())
    assert [e.id for e in await store.claim(node.id, frozenset(), 10, NOW)] == [bare.id]


async def test_claim_respects_not_before_and_limit(store: Store) -> None:
    node = await store.register_node(name="n", tags=frozenset(), capacity=9, ttl=30, now=NOW)
    later = await store.enqueue(execution(not_before=at(5)))
    first = await store.enqueue(execution(not_before=at(-2)))
    second = await store.enqueue(execution(not_before=at(-1)))
    assert [e.id for e in await store.claim(node.id, frozenset(), 1, NOW)] == [first.id]
    assert [e.id for e in await store.claim(node.id, frozenset(), 5, NOW)] == [second.id]
    assert [e.id for e in await store.claim(node.id, frozenset(), 5, at(5))] == [later.id]


async def test_claim_by_a_node_without_a_live_lease_is_fenced(store: Store) -> None:
    node = await store.register_node(name="n", tags=frozenset(), capacity=9, ttl=30, now=NOW)
    queued = await store.enqueue(execution())
    with pytest.raises(Fenced):
        await store.claim(node.id, frozenset(), 5, at(30))
    with pytest.raises(Fenced):
        await store.claim(uuid4(), frozenset(), 5, NOW)
    assert (await store.get_execution(queued.id, visible_to=None)).state is RunState.QUEUED


async def test_finish_records_outcome_counters_event_and_retry(store: Store) -> None:
    node = await store.register_node(name="n", tags=frozenset(), capacity=9, ttl=30, now=NOW)
    job = await store.create_job(spec(), next_fire_at=None, created_by=ALICE, now=NOW)
    policy = RetryPolicy(max_retries=2, delay=3.0, backoff=1.5, max_delay=9.0)
    await store.enqueue(replace(execution(job_id=job.id), retry=policy))
    [run] = await store.claim(node.id, frozenset(), 1, NOW)
    assert run.retry == policy  # the snapshot travels with the run
    outcome = Outcome(
        state=RunState.FAILED, exit_code=3, finished_at=at(2), stdout_bytes=7, stderr_bytes=1
    )
    done, retry = await finish_one(
        store, run.id, node_id=node.id, outcome=outcome, retry=retry_in_10s
    )
    assert (done.state, done.exit_code, done.finished_at, done.stdout_bytes) == (
        RunState.FAILED,
        3,
        at(2),
        7,
    )
    assert await store.get_execution(run.id, visible_to=SEES_ALICE) == done
    assert retry is not None
    assert (retry.job_id, retry.scheduled_for, retry.attempt, retry.not_before) == (
        job.id,
        run.scheduled_for,
        2,
        at(12),
    )
    assert (retry.state, retry.queued_at, retry.retry) == (RunState.QUEUED, at(2), policy)
    assert await store.get_execution(retry.id, visible_to=None) == retry
    after = await store.get_job(job.id, visible_to=None)
    assert (after.failure_count, after.success_count, after.last_state) == (1, 0, RunState.FAILED)
    assert after.last_run_at == NOW
    [event] = await store.list_events(visible_to=SEES_ALICE)
    assert (event.kind, event.execution_id, event.owner) == ("run.finished", run.id, ALICE)
    # The retry succeeds: counted as a success, no further retry.
    [again] = await store.claim(node.id, frozenset(), 1, at(12))
    ok = Outcome(state=RunState.SUCCEEDED, exit_code=0, finished_at=at(13))
    _, none = await finish_one(store, again.id, node_id=node.id, outcome=ok, retry=no_retry)
    assert none is None
    after = await store.get_job(job.id, visible_to=None)
    assert (after.failure_count, after.success_count, after.last_run_at) == (1, 1, at(12))


async def test_finish_many_records_each_like_finish_and_skips_fenced_ones(store: Store) -> None:
    node = await store.register_node(name="n", tags=frozenset(), capacity=9, ttl=30, now=NOW)
    job = await store.create_job(spec(), next_fire_at=None, created_by=ALICE, now=NOW)
    policy = RetryPolicy(max_retries=1, delay=3.0)
    await store.enqueue(replace(execution(job_id=job.id), retry=policy))
    await store.enqueue(execution())
    await store.enqueue(execution())
    first, second, third = await store.claim(node.id, frozenset(), 3, NOW)
    # `second` was given away meanwhile: its finish must be refused, the others kept.
    await finish_one(
        store,
        second.id,
        node_id=node.id,
        outcome=Outcome(state=RunState.SUCCEEDED, exit_code=0, finished_at=at(1)),
        retry=no_retry,
    )
    failed = Outcome(state=RunState.FAILED, exit_code=1, finished_at=at(2))
    ok = Outcome(state=RunState.SUCCEEDED, exit_code=0, finished_at=at(2))
    results = await store.finish_many(
        [
            Finish(execution_id=first.id, outcome=failed),
            Finish(execution_id=second.id, outcome=failed),
            Finish(execution_id=third.id, outcome=ok),
        ],
        node_id=node.id,
        retry=lambda ex: retry_in_10s(ex) if ex.state is RunState.FAILED else None,
    )
    assert results[1] is None
    assert (await store.get_execution(second.id, visible_to=None)).state is RunState.SUCCEEDED
    done_first, again = results[0] or (None, None)
    done_third, none = results[2] or (None, None)
    assert done_first is not None and done_first.state is RunState.FAILED
    assert again is not None and (again.attempt, again.not_before) == (2, at(12))
    assert done_third is not None and done_third.state is RunState.SUCCEEDED and none is None
    assert (await store.get_job(job.id, visible_to=None)).failure_count == 1
    finished = [e.execution_id for e in await store.list_events(visible_to=None)]
    assert finished == [second.id, first.id, third.id]
    assert await store.finish_many([], node_id=node.id, retry=no_retry) == []
    other = await store.finish_many(
        [Finish(execution_id=again.id, outcome=ok)], node_id=uuid4(), retry=no_retry
    )
    assert other == [None]


async def test_finish_stores_the_last_output_with_the_end_or_not_at_all(store: Store) -> None:
    node = await store.register_node(name="n", tags=frozenset(), capacity=9, ttl=30, now=NOW)
    await store.enqueue(execution())
    await store.enqueue(execution())
    mine, taken = await store.claim(node.id, frozenset(), 2, NOW)
    ok = Outcome(state=RunState.SUCCEEDED, exit_code=0, finished_at=at(1))
    await finish_one(store, taken.id, node_id=node.id, outcome=ok, retry=no_retry)  # given away

    def tail(run: Execution) -> list[OutputChunk]:
        return [
            OutputChunk(execution_id=run.id, stream=Stream.STDOUT, offset=0, seq=0, data=b"a\n"),
            OutputChunk(execution_id=run.id, stream=Stream.STDERR, offset=0, seq=1, data=b"b"),
        ]

    results = await store.finish_many(
        [
            Finish(execution_id=mine.id, outcome=ok, chunks=tail(mine)),
            Finish(execution_id=taken.id, outcome=ok, chunks=tail(taken)),
        ],
        node_id=node.id,
        retry=no_retry,
    )
    assert results[0] is not None and results[1] is None
    both = [Stream.STDOUT, Stream.STDERR]
    stored = await store.read_output(mine.id, streams=both)
    assert [(c.stream, c.data) for c in stored] == [(Stream.STDOUT, b"a\n"), (Stream.STDERR, b"b")]
    assert await store.read_output(taken.id, streams=both) == []


async def test_finish_by_another_node_or_twice_is_fenced_and_changes_nothing(
    store: Store,
) -> None:
    node = await store.register_node(name="n", tags=frozenset(), capacity=9, ttl=30, now=NOW)
    await store.enqueue(execution())
    [run] = await store.claim(node.id, frozenset(), 1, NOW)
    outcome = Outcome(state=RunState.SUCCEEDED, exit_code=0, finished_at=at(1))
    with pytest.raises(Fenced):
        await finish_one(store, run.id, node_id=uuid4(), outcome=outcome, retry=retry_in_10s)
    assert await store.get_execution(run.id, visible_to=None) == run
    await finish_one(store, run.id, node_id=node.id, outcome=outcome, retry=no_retry)
    with pytest.raises(Fenced):
        await finish_one(store, run.id, node_id=node.id, outcome=outcome, retry=retry_in_10s)
    assert len(await store.list_executions(visible_to=None)) == 1


async def test_request_stop_on_queued_running_terminal_and_invisible(store: Store) -> None:
    node = await store.register_node(name="n", tags=frozenset(), capacity=9, ttl=30, now=NOW)
    running = await store.enqueue(execution(not_before=at(-1)))
    await store.claim(node.id, frozenset(), 1, NOW)
    queued = await store.enqueue(execution(not_before=at(99)))
    stopped = await store.request_stop(
        queued.id, visible_to=SEES_ALICE, reason="by alice", now=at(1)
    )
    assert (stopped.state, stopped.reason, stopped.finished_at) == (
        RunState.STOPPED,
        "by alice",
        at(1),
    )
    asked = await store.request_stop(running.id, visible_to=None, reason="by admin", now=at(1))
    assert (asked.state, asked.stop_requested) == (RunState.RUNNING, True)
    assert await store.renew_lease(node.id, ttl=30, now=at(2)) == [running.id]
    again = await store.request_stop(queued.id, visible_to=None, reason="again", now=at(5))
    assert again == stopped  # terminal: unchanged
    for missing in (running.id, uuid4()):
        with pytest.raises(NotFound):
            await store.request_stop(missing, visible_to=SEES_BOB, reason="x", now=NOW)


async def test_executions_are_listed_newest_first_with_paging_and_filters(store: Store) -> None:
    job = await store.create_job(spec(), next_fire_at=None, created_by=ALICE, now=NOW)
    made = [
        await store.enqueue(execution(job_id=job.id, scheduled_for=at(i), queued_at=at(i // 2)))
        for i in range(7)
    ]
    theirs = await store.enqueue(execution(owner=BOB, queued_at=at(100)))
    newest_first = sorted(made, key=lambda e: (e.queued_at, e.id), reverse=True)
    assert await store.list_executions(visible_to=SEES_ALICE) == newest_first
    assert (await store.list_executions(visible_to=None))[0] == theirs
    assert await store.list_executions(visible_to=SEES_BOB, job_id=job.id) == []
    pages, before = [], None
    while page := await store.list_executions(
        visible_to=None, job_id=job.id, before=before, limit=3
    ):
        pages.append(page)
        before = (page[-1].queued_at, page[-1].id)
    assert [e for p in pages for e in p] == newest_first
    assert [len(p) for p in pages] == [3, 3, 1]
    await store.request_stop(made[0].id, visible_to=None, reason="x", now=NOW)
    stopped = await store.list_executions(visible_to=None, states=[RunState.STOPPED])
    assert [e.id for e in stopped] == [made[0].id]
    with pytest.raises(NotFound):
        await store.get_execution(theirs.id, visible_to=SEES_ALICE)


async def test_next_claimable_at_is_the_earliest_wait_a_node_may_claim(store: Store) -> None:
    assert await store.next_claimable_at(frozenset()) is None
    await store.enqueue(execution(not_before=at(30)))
    await store.enqueue(execution(not_before=at(10), tags=frozenset({"gpu"})))
    await store.enqueue(execution(not_before=at(20)))
    assert await store.next_claimable_at(frozenset()) == at(20)
    assert await store.next_claimable_at(frozenset({"gpu"})) == at(10)
