"""Contract: the reactions outbox, written with outcomes, claimed once, settled, retried."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import datetime, timedelta
from uuid import UUID, uuid4

import pytest
from storekit import ALICE, NOW, SEES_ALICE, SEES_BOB, StoreFactory, at, execution, finish_one, spec

from cronhive.errors import Conflict, NotFound
from cronhive.model import (
    Delivery,
    DeliveryState,
    Execution,
    Job,
    Misfire,
    NotifyOn,
    Outcome,
    RetryPolicy,
    RunState,
)
from cronhive.schedule import parse_schedule
from cronhive.store import Finish, Store

NOTIFY = {
    "failure": ("ops",),
    "recovery": ("ops", "chat"),
    "success": ("log",),
    "missed": ("ops",),
    "start": ("log",),
}


T = ("ops", "chat", "log")  # the targets the claiming node knows


def no_retry(_: Execution) -> datetime | None:
    return None


def retry_now(ex: Execution) -> datetime | None:
    return ex.finished_at if ex.attempt < 2 else None


async def _job(store: Store, **kw: object) -> Job:
    kw.setdefault("notify", NOTIFY)
    return await store.create_job(
        spec("backup", ALICE, frozenset(), **kw), next_fire_at=None, created_by=ALICE, now=NOW
    )


async def _run(
    store: Store, node: UUID, job: Job, state: RunState, t: float, retry: object = no_retry
) -> None:
    await store.enqueue(replace(execution(job_id=job.id, scheduled_for=at(t)), retry=RetryPolicy()))
    for run in await store.claim(node, frozenset(), 10, at(t)):
        outcome = Outcome(
            state=state, exit_code=0 if state is RunState.SUCCEEDED else 1, finished_at=at(t + 1)
        )
        await finish_one(store, run.id, node_id=node, outcome=outcome, retry=retry)  # type: ignore[arg-type]


def _events(found: list[Delivery]) -> list[tuple[str, str]]:
    return sorted((str(d.event), d.target) for d in found)


async def test_outcomes_write_deliveries_and_recovery_fires_once(store: Store) -> None:
    node = await store.register_node(name="n", tags=frozenset(), capacity=9, ttl=300, now=NOW)
    job = await _job(store)
    await _run(store, node.id, job, RunState.FAILED, 0)
    first = await store.list_deliveries(visible_to=SEES_ALICE, job_id=job.id)
    assert _events(first) == [("failure", "ops"), ("start", "log")]
    failure = next(d for d in first if d.event is NotifyOn.FAILURE)
    assert (failure.state, failure.attempts, failure.owner) == (DeliveryState.PENDING, 0, ALICE)
    assert failure.payload["run"]["state"] == "failed"
    assert failure.payload["run"]["exit_code"] == 1
    assert failure.payload["job"] == {"id": str(job.id), "name": "backup"}
    assert "env" not in str(failure.payload)  # a run's environment may hold secrets
    await _run(store, node.id, job, RunState.FAILED, 10)
    await _run(store, node.id, job, RunState.SUCCEEDED, 20)
    await _run(store, node.id, job, RunState.SUCCEEDED, 30)
    found = await store.list_deliveries(visible_to=None, job_id=job.id)
    counts = {e: sum(1 for d in found if str(d.event) == e) for e in NOTIFY}
    # Two recovery targets, once: the first success after the failures, not the second.
    assert counts == {"failure": 2, "recovery": 2, "success": 2, "missed": 0, "start": 4}
    assert await store.list_deliveries(visible_to=SEES_BOB) == []


async def test_a_failure_with_a_retry_after_it_is_not_yet_a_failure(store: Store) -> None:
    node = await store.register_node(name="n", tags=frozenset(), capacity=9, ttl=300, now=NOW)
    job = await _job(store, notify={"failure": ("ops",), "recovery": ("ops",)})
    await _run(store, node.id, job, RunState.FAILED, 0, retry=retry_now)
    assert await store.list_deliveries(visible_to=None) == []
    [again] = await store.claim(node.id, frozenset(), 1, at(5))
    ok = Outcome(state=RunState.SUCCEEDED, exit_code=0, finished_at=at(6))
    await finish_one(store, again.id, node_id=node.id, outcome=ok, retry=no_retry)
    # Nobody was told of a failure, so the success is no recovery either.
    assert await store.list_deliveries(visible_to=None) == []


async def test_a_lost_run_with_no_retry_is_a_failure_written_by_the_reaper(store: Store) -> None:
    node = await store.register_node(name="n", tags=frozenset(), capacity=9, ttl=30, now=NOW)
    job = await _job(store, notify={"failure": ("ops",)})
    await store.enqueue(execution(job_id=job.id))
    [run] = await store.claim(node.id, frozenset(), 1, NOW)
    await store.reap(now=at(31), retry=no_retry)
    [d] = await store.list_deliveries(visible_to=None)
    assert (d.event, d.execution_id, d.payload["run"]["state"]) == (
        NotifyOn.FAILURE,
        run.id,
        "lost",
    )


async def test_skipped_slots_of_a_tick_are_one_missed_delivery(store: Store) -> None:
    cron = parse_schedule("cron", "* * * * *", timezone="UTC")
    job = await _job(store, schedule=cron, misfire=Misfire.SKIP)
    other = await store.create_job(
        spec("quiet", schedule=cron), next_fire_at=None, created_by=ALICE, now=NOW
    )
    slots = [NOW + timedelta(minutes=i) for i in range(3)]
    async with store.firing(at(3600), 10) as batch:
        batch.jobs = [job, other]
        skipped = [
            replace(
                execution(job_id=j.id, scheduled_for=s, state=RunState.SKIPPED),
                finished_at=at(3600),
            )
            for j in (job, other)
            for s in slots
        ]
        assert len(await batch.insert_many(skipped)) == 6
    [d] = await store.list_deliveries(visible_to=None)
    assert (d.event, d.job_id, d.target) == (NotifyOn.MISSED, job.id, "ops")
    assert d.payload["missed"] == {
        "count": 3,
        "first": slots[0].isoformat(),
        "last": slots[2].isoformat(),
    }


async def _pending(store: Store, count: int, ttl: float = 300) -> tuple[UUID, list[Delivery]]:
    node = await store.register_node(name="a", tags=frozenset(), capacity=9, ttl=ttl, now=NOW)
    job = await _job(store, notify={"failure": ("ops",)})
    for i in range(count):
        await _run(store, node.id, job, RunState.FAILED, i)
    return node.id, await store.list_deliveries(visible_to=None)


async def test_claim_settle_backoff_give_up_and_retry_by_hand(store: Store) -> None:
    node, [pending] = await _pending(store, 1)
    assert (
        await store.claim_deliveries(node, targets=T, limit=5, claim_for=60, now=at(-10)) == []
    )  # not due
    # A node that does not know the target leaves the delivery to one that does.
    assert (
        await store.claim_deliveries(node, targets={"other"}, limit=5, claim_for=60, now=at(2))
        == []
    )
    assert await store.claim_deliveries(node, targets=(), limit=5, claim_for=60, now=at(2)) == []
    [claimed] = await store.claim_deliveries(node, targets=T, limit=5, claim_for=60, now=at(2))
    assert (claimed.id, claimed.state, claimed.attempts) == (
        pending.id,
        DeliveryState.DELIVERING,
        1,
    )
    assert claimed.claimed_by == node and claimed.claim_expires_at == at(62)
    assert (
        await store.claim_deliveries(node, targets=T, limit=5, claim_for=60, now=at(3)) == []
    )  # held
    assert await store.settle_delivery(
        claimed.id, node_id=node, now=at(3), error="HTTP 500", retry_at=at(10)
    )
    assert await store.claim_deliveries(node, targets=T, limit=5, claim_for=60, now=at(9)) == []
    [again] = await store.claim_deliveries(node, targets=T, limit=5, claim_for=60, now=at(10))
    assert (again.attempts, again.last_error) == (2, "HTTP 500")
    assert await store.settle_delivery(again.id, node_id=node, now=at(11), error="HTTP 500")
    failed = await store.get_delivery(again.id, visible_to=SEES_ALICE)
    assert (failed.state, failed.attempts) == (DeliveryState.FAILED, 2)
    assert await store.claim_deliveries(node, targets=T, limit=5, claim_for=60, now=at(99)) == []
    with pytest.raises(NotFound):
        await store.retry_delivery(again.id, visible_to=SEES_BOB, now=at(100))
    queued = await store.retry_delivery(again.id, visible_to=SEES_ALICE, now=at(100))
    assert (queued.state, queued.attempts) == (DeliveryState.PENDING, 0)
    with pytest.raises(Conflict):
        await store.retry_delivery(again.id, visible_to=None, now=at(100))
    [last] = await store.claim_deliveries(node, targets=T, limit=5, claim_for=60, now=at(100))
    assert await store.settle_delivery(last.id, node_id=node, now=at(101))
    done = await store.get_delivery(last.id, visible_to=None)
    assert (done.state, done.delivered_at, done.last_error) == (
        DeliveryState.DELIVERED,
        at(101),
        None,
    )


async def test_a_dead_nodes_claims_are_taken_over_and_its_late_result_refused(
    store: Store,
) -> None:
    first, _ = await _pending(store, 1, ttl=30)
    [held] = await store.claim_deliveries(first, targets=T, limit=5, claim_for=600, now=at(2))
    assert await store.claim_deliveries(first, targets=T, limit=5, claim_for=60, now=at(20)) == []
    # The claim runs for 600 s, but its node's 30 s lease lapses first: taken over then
    # (the second node joins then: SQLite allows one live node at a time).
    second = await store.register_node(name="b", tags=frozenset(), capacity=9, ttl=300, now=at(31))
    [taken] = await store.claim_deliveries(second.id, targets=T, limit=5, claim_for=60, now=at(31))
    assert (taken.id, taken.claimed_by, taken.attempts) == (held.id, second.id, 2)
    assert not await store.settle_delivery(held.id, node_id=first, now=at(32))
    assert await store.settle_delivery(held.id, node_id=second.id, now=at(33))
    # And a claim that overran its time, its node alive, is taken over too.
    node = second.id
    job = await store.find_job("backup", owner=ALICE, visible_to=None)
    await _run(store, node, job, RunState.FAILED, 40)
    [slow] = await store.claim_deliveries(node, targets=T, limit=5, claim_for=5, now=at(42))
    [over] = await store.claim_deliveries(node, targets=T, limit=5, claim_for=5, now=at(47))
    assert over.id == slow.id and over.attempts == 2


async def test_concurrent_claimers_never_share_a_delivery(store_factory: StoreFactory) -> None:
    stores = [await store_factory() for _ in range(3)]
    node, pending = await _pending(stores[0], 12)
    assert len(pending) == 12

    async def drain(s: Store, n: UUID) -> list[UUID]:
        got: list[UUID] = []
        while batch := await s.claim_deliveries(n, targets=T, limit=2, claim_for=60, now=at(20)):
            got += [d.id for d in batch]
            await asyncio.sleep(0)
        return got

    # Three connections claiming at once (one node id: SQLite allows one live node).
    taken = await asyncio.gather(*(drain(s, node) for s in stores))
    flat = [d for part in taken for d in part]
    assert sorted(flat) == sorted(d.id for d in pending)  # each once, none left behind


async def test_a_fenced_finish_writes_no_delivery(store: Store) -> None:
    node = await store.register_node(name="n", tags=frozenset(), capacity=9, ttl=300, now=NOW)
    job = await _job(store, notify={"failure": ("ops",)})
    await store.enqueue(execution(job_id=job.id))
    [run] = await store.claim(node.id, frozenset(), 1, NOW)
    outcome = Outcome(state=RunState.FAILED, exit_code=1, finished_at=at(1))
    [none] = await store.finish_many(
        [Finish(execution_id=run.id, outcome=outcome)],
        node_id=uuid4(),  # not the node running it
        retry=no_retry,
    )
    assert none is None
    assert await store.list_deliveries(visible_to=None) == []


async def test_owner_defaults_apply_where_a_job_has_no_rule_of_its_own(store: Store) -> None:
    node = await store.register_node(name="n", tags=frozenset(), capacity=9, ttl=300, now=NOW)
    await store.set_notify_defaults(
        ALICE, {"failure": ("ops",), "start": ("log",)}, by=ALICE, now=NOW
    )
    plain = await _job(store, notify={})
    own = await store.create_job(
        spec("own", ALICE, frozenset(), notify={"failure": ("pager",)}),
        next_fire_at=None,
        created_by=ALICE,
        now=NOW,
    )
    await _run(store, node.id, plain, RunState.FAILED, 0)
    await _run(store, node.id, own, RunState.FAILED, 0)
    assert _events(await store.list_deliveries(visible_to=None, job_id=plain.id)) == [
        ("failure", "ops"),
        ("start", "log"),
    ]
    # The job's own failure rule replaces the default one; the start default still holds.
    assert _events(await store.list_deliveries(visible_to=None, job_id=own.id)) == [
        ("failure", "pager"),
        ("start", "log"),
    ]
    assert await store.notify_defaults(visible_to=SEES_ALICE) == {
        ALICE: {"failure": ("ops",), "start": ("log",)}
    }
    assert await store.notify_defaults(visible_to=SEES_BOB) == {}
    await store.set_notify_defaults(ALICE, {}, by=ALICE, now=NOW)
    assert await store.notify_defaults(visible_to=None) == {}
    await _run(store, node.id, plain, RunState.FAILED, 10)
    assert len(await store.list_deliveries(visible_to=None, job_id=plain.id)) == 2


async def test_owner_defaults_cover_missed_slots(store: Store) -> None:
    await store.set_notify_defaults(ALICE, {"missed": ("ops",)}, by=ALICE, now=NOW)
    cron = parse_schedule("cron", "* * * * *", timezone="UTC")
    job = await _job(store, schedule=cron, misfire=Misfire.SKIP, notify={})
    async with store.firing(at(3600), 10) as batch:
        batch.jobs = [job]
        skipped = replace(execution(job_id=job.id, state=RunState.SKIPPED), finished_at=at(3600))
        await batch.insert_many([skipped])
    [d] = await store.list_deliveries(visible_to=None)
    assert (d.event, d.target, d.payload["missed"]["count"]) == (NotifyOn.MISSED, "ops", 1)
