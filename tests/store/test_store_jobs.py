"""Contract: jobs (create, read, list, update, pause, delete), on both backends."""

from __future__ import annotations

from uuid import uuid4

import pytest
from storekit import ALICE, BOB, NOW, SEES_ALICE, SEES_BOB, at, execution, spec

from cronhive.errors import Conflict, NotFound
from cronhive.model import Concurrency, Misfire, RetryPolicy, RunState
from cronhive.schedule import parse_schedule
from cronhive.store import Store


async def test_create_then_get_and_find_return_the_same_job(store: Store) -> None:
    schedule = parse_schedule(
        "cron", "30 2 * * *", timezone="Europe/Berlin", dst_repeated="last", dst_skipped="skip"
    )
    full = spec(
        tags=frozenset({"gpu", "eu"}),
        schedule=schedule,
        retry=RetryPolicy(max_retries=3, delay=1.5),
        concurrency=Concurrency.FORBID,
        misfire=Misfire.ALL,
        description="nightly",
    )
    job = await store.create_job(full, next_fire_at=at(60.000001), created_by=ALICE, now=NOW)
    assert await store.get_job(job.id, visible_to=None) == job
    assert await store.find_job("backup", owner=ALICE, visible_to=SEES_ALICE) == job
    assert job.spec.schedule == schedule
    assert job.next_fire_at == at(60.000001)  # exact to the microsecond, aware UTC
    assert job.next_fire_at is not None and job.next_fire_at.utcoffset() is not None


async def test_duplicate_name_of_one_owner_conflicts(store: Store) -> None:
    await store.create_job(spec("a"), next_fire_at=None, created_by=ALICE, now=NOW)
    with pytest.raises(Conflict, match="'a'"):
        await store.create_job(spec("a"), next_fire_at=None, created_by=ALICE, now=NOW)
    # Another owner may use the name; renaming onto a taken name conflicts.
    await store.create_job(spec("a", owner=BOB), next_fire_at=None, created_by=BOB, now=NOW)
    b = await store.create_job(spec("b"), next_fire_at=None, created_by=ALICE, now=NOW)
    with pytest.raises(Conflict):
        await store.update_job(b.id, spec("a"), next_fire_at=None, visible_to=None, now=NOW)
    assert (await store.get_job(b.id, visible_to=None)).name == "b"


async def test_invisible_job_is_not_found_like_a_missing_one(store: Store) -> None:
    job = await store.create_job(spec(), next_fire_at=NOW, created_by=ALICE, now=NOW)
    for job_id in (job.id, uuid4()):
        with pytest.raises(NotFound):
            await store.get_job(job_id, visible_to=SEES_BOB)
        with pytest.raises(NotFound):
            await store.update_job(job_id, spec(), next_fire_at=None, visible_to=SEES_BOB, now=NOW)
        with pytest.raises(NotFound):
            await store.set_enabled(job_id, False, next_fire_at=None, visible_to=SEES_BOB, now=NOW)
        with pytest.raises(NotFound):
            await store.delete_job(job_id, visible_to=SEES_BOB, now=NOW)
    with pytest.raises(NotFound):
        await store.find_job("backup", owner=ALICE, visible_to=SEES_BOB)
    with pytest.raises(NotFound):
        await store.find_job("nope", owner=ALICE, visible_to=None)
    assert await store.get_job(job.id, visible_to=SEES_ALICE) == job


async def test_list_jobs_filters_and_pages_by_owner_and_name(store: Store) -> None:
    for owner in (ALICE, BOB):
        for name in ("a1", "a2", "b1", "b_"):
            await store.create_job(
                spec(name, owner=owner, enabled=name != "a2"),
                next_fire_at=None,
                created_by=owner,
                now=NOW,
            )
    everything = await store.list_jobs(visible_to=None)
    assert [(j.owner, j.name) for j in everything] == sorted(
        (o, n) for o in (ALICE, BOB) for n in ("a1", "a2", "b1", "b_")
    )
    mine = await store.list_jobs(visible_to=SEES_ALICE)
    assert {j.owner for j in mine} == {ALICE}
    assert [j.name for j in await store.list_jobs(visible_to=None, owner=BOB, name_prefix="a")] == [
        "a1",
        "a2",
    ]
    # `_` is literal in a prefix, not a wildcard.
    assert [j.name for j in await store.list_jobs(visible_to=SEES_ALICE, name_prefix="b_")] == [
        "b_"
    ]
    paused = await store.list_jobs(visible_to=None, enabled=False)
    assert [(j.owner, j.name) for j in paused] == [(ALICE, "a2"), (BOB, "a2")]
    pages, after = [], None
    while page := await store.list_jobs(visible_to=None, after=after, limit=3):
        pages.append(page)
        after = (page[-1].owner, page[-1].name)
    assert [len(p) for p in pages] == [3, 3, 2]
    assert [j for p in pages for j in p] == everything


async def test_update_and_set_enabled_keep_counters_and_creation(store: Store) -> None:
    job = await store.create_job(spec(), next_fire_at=NOW, created_by=ALICE, now=NOW)
    new = spec("renamed", tags=frozenset({"x"}), description="changed")
    updated = await store.update_job(
        job.id, new, next_fire_at=at(5), visible_to=SEES_ALICE, now=at(1)
    )
    assert updated.spec == new
    assert (updated.next_fire_at, updated.created_at, updated.updated_at) == (at(5), NOW, at(1))
    assert updated.created_by == ALICE
    paused = await store.set_enabled(job.id, False, next_fire_at=None, visible_to=None, now=at(2))
    assert (paused.spec.enabled, paused.next_fire_at, paused.updated_at) == (False, None, at(2))
    assert await store.get_job(job.id, visible_to=None) == paused
    assert await store.next_fire_at() is None
    resumed = await store.set_enabled(job.id, True, next_fire_at=at(9), visible_to=None, now=at(3))
    assert resumed.spec.enabled
    assert await store.next_fire_at() == at(9)


async def test_delete_job_keeps_history_and_skips_queued_runs(store: Store) -> None:
    job = await store.create_job(spec(), next_fire_at=NOW, created_by=ALICE, now=NOW)
    node = await store.register_node(name="n", tags=frozenset(), capacity=1, ttl=30, now=NOW)
    first = await store.enqueue(execution(job_id=job.id, scheduled_for=at(-60)))
    [running] = await store.claim(node.id, frozenset(), 1, NOW)
    assert running.id == first.id
    queued = await store.enqueue(execution(job_id=job.id, scheduled_for=NOW))
    await store.delete_job(job.id, visible_to=SEES_ALICE, now=at(1))
    with pytest.raises(NotFound):
        await store.get_job(job.id, visible_to=None)
    history = {e.id: e for e in await store.list_executions(visible_to=None, job_id=job.id)}
    assert history[first.id].state is RunState.RUNNING  # left to finish
    skipped = history[queued.id]
    assert (skipped.state, skipped.reason, skipped.finished_at) == (
        RunState.SKIPPED,
        "job deleted",
        at(1),
    )
    # The name is free again; the old history stays under the old id.
    await store.create_job(spec(), next_fire_at=None, created_by=ALICE, now=NOW)
    assert len(await store.list_executions(visible_to=None, job_id=job.id)) == 2
