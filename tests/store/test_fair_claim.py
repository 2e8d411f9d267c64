"""Contract: claiming interleaves owners and keeps each owner within its cap."""

from __future__ import annotations

from storekit import ALICE, BOB, NOW, at, execution, finish_one, spec

from cronhive.model import Outcome, RunState
from cronhive.store import Store
from cronhive.store.base import RunCaps

CAROL = "user:carol"


async def test_one_owners_100_queued_runs_delay_anothers_by_at_most_one_start(
    store: Store,
) -> None:
    node = await store.register_node(name="n", tags=frozenset(), capacity=1, ttl=60, now=NOW)
    for i in range(100):  # all older than alice's run
        await store.enqueue(execution(owner=BOB, queued_at=at(-200 + i), not_before=at(-200 + i)))
    mine = await store.enqueue(execution(owner=ALICE, queued_at=at(-1), not_before=at(-1)))
    starts: list[str] = []
    while mine.id not in {e.id for e in await store.list_executions(
        visible_to=None, states={RunState.RUNNING})}:  # fmt: skip
        [taken] = await store.claim(node.id, frozenset(), 1, NOW)
        starts.append(taken.owner)
    assert starts[-1] == ALICE
    assert len(starts) <= 2  # at most one of bob's runs started before alice's


async def test_an_owner_with_runs_running_goes_after_one_with_none(store: Store) -> None:
    node = await store.register_node(name="n", tags=frozenset(), capacity=9, ttl=60, now=NOW)
    for i in range(3):
        await store.enqueue(execution(owner=BOB, queued_at=at(-100 + i), not_before=at(-100)))
    assert {e.owner for e in await store.claim(node.id, frozenset(), 3, NOW)} == {BOB}
    await store.enqueue(execution(owner=BOB, queued_at=at(-50), not_before=at(-50)))
    mine = await store.enqueue(execution(owner=ALICE, queued_at=at(-1), not_before=at(-1)))
    # Bob's queued run is older, but bob has three running: alice's run goes first.
    [taken] = await store.claim(node.id, frozenset(), 1, NOW)
    assert taken.id == mine.id


async def test_claims_interleave_owners_oldest_first_within_each(store: Store) -> None:
    node = await store.register_node(name="n", tags=frozenset(), capacity=9, ttl=60, now=NOW)
    bob = [
        await store.enqueue(execution(owner=BOB, queued_at=at(-30 + i), not_before=at(-30 + i)))
        for i in range(4)
    ]
    alice = [
        await store.enqueue(execution(owner=ALICE, queued_at=at(-10 + i), not_before=at(-10 + i)))
        for i in range(2)
    ]
    order = []
    while batch := await store.claim(node.id, frozenset(), 1, NOW):
        order += [e.id for e in batch]
    assert order == [bob[0].id, alice[0].id, bob[1].id, alice[1].id, bob[2].id, bob[3].id]


async def test_an_owner_at_its_cap_is_passed_over_and_others_proceed(store: Store) -> None:
    node = await store.register_node(name="n", tags=frozenset(), capacity=50, ttl=60, now=NOW)
    caps = RunCaps(default=2, owners={CAROL: None, ALICE: 3})
    for owner in (BOB, ALICE, CAROL):
        for i in range(5):
            await store.enqueue(execution(owner=owner, queued_at=at(-60 + i), not_before=at(-60)))
    claimed = await store.claim(node.id, frozenset(), 50, NOW, caps=caps)
    counts = {o: sum(e.owner == o for e in claimed) for o in (BOB, ALICE, CAROL)}
    assert counts == {BOB: 2, ALICE: 3, CAROL: 5}
    # At the cap: nothing more of bob's or alice's until one of theirs ends.
    assert await store.claim(node.id, frozenset(), 50, NOW, caps=caps) == []
    first_bob = min((e for e in claimed if e.owner == BOB), key=lambda e: e.queued_at)
    done = Outcome(state=RunState.SUCCEEDED, exit_code=0, finished_at=at(1))
    await finish_one(store, first_bob.id, node_id=node.id, outcome=done, retry=lambda _: None)
    [again] = await store.claim(node.id, frozenset(), 50, at(1), caps=caps)
    assert again.owner == BOB
    usage = await store.usage(BOB)
    assert (usage.queued, usage.running, usage.jobs) == (2, 2, 0)


async def test_the_fast_path_keeps_owners_within_their_caps(store: Store) -> None:
    node = await store.register_node(name="n", tags=frozenset(), capacity=50, ttl=60, now=NOW)
    caps = RunCaps(default=1)
    running = await store.enqueue(execution(owner=BOB, queued_at=at(-9), not_before=at(-9)))
    assert [e.id for e in await store.claim(node.id, frozenset(), 5, NOW, caps=caps)] == [
        running.id
    ]
    job = await store.create_job(spec(owner=BOB), next_fire_at=NOW, created_by=BOB, now=NOW)
    other = await store.create_job(spec(owner=ALICE), next_fire_at=NOW, created_by=ALICE, now=NOW)
    bobs, alices = execution(job_id=job.id, owner=BOB), execution(job_id=other.id, owner=ALICE)
    async with store.firing(NOW, limit=10) as batch:
        assert await batch.insert_many([bobs, alices]) == {bobs.id, alices.id}
        fast = await batch.claim([bobs.id, alices.id], node.id, NOW, caps=caps)
    assert [e.id for e in fast] == [alices.id]
    assert (await store.get_execution(bobs.id, visible_to=None)).state is RunState.QUEUED
    usage = await store.usage(BOB)
    assert (usage.jobs, usage.queued, usage.running) == (1, 1, 1)


async def test_next_claimable_leaves_out_owners_at_their_cap(store: Store) -> None:
    node = await store.register_node(name="n", tags=frozenset(), capacity=9, ttl=60, now=NOW)
    caps = RunCaps(default=1)
    first = await store.enqueue(execution(owner=BOB, queued_at=at(-5), not_before=at(-5)))
    await store.enqueue(execution(owner=BOB, queued_at=at(-4), not_before=at(-4)))
    assert [e.id for e in await store.claim(node.id, frozenset(), 9, NOW, caps=caps)] == [first.id]
    # Bob's second run waits for his first to end, not for a time: nothing to wake for.
    assert await store.next_claimable_at(frozenset(), caps=caps) is None
    assert await store.next_claimable_at(frozenset()) == at(-4)
    await store.enqueue(execution(owner=ALICE, queued_at=at(3), not_before=at(3)))
    assert await store.next_claimable_at(frozenset(), caps=caps) == at(3)
