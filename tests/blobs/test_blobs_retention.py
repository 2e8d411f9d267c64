"""Retention on the injected clock: old runs, their archived objects and old events go;
recent runs and every job's newest run stay; one node at a time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID, uuid4

import pytest

from cronhive.blobs import BlobStore
from cronhive.blobs.archive import run_prefix, write_archive
from cronhive.engine.clock import ManualClock
from cronhive.engine.retention import Retention, RetentionPolicy
from cronhive.errors import NotFound
from cronhive.model import (
    Event,
    Execution,
    JobSpec,
    Outcome,
    OutputChunk,
    RunSpec,
    RunState,
    Stream,
)
from cronhive.store import Finish, Store, open_store

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
OWNER = "user:alice"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = await open_store(f"sqlite:///{tmp_path / 'r.db'}")
    try:
        yield s
    finally:
        await s.close()


async def _archived_run(
    store: Store, blobs: BlobStore, node_id: UUID, job_id: UUID | None, days_ago: float
) -> UUID:
    """A run queued `days_ago` days before NOW that wrote output, ended, and was archived."""
    at = NOW - timedelta(days=days_ago)
    ex = Execution(
        id=uuid4(),
        job_id=job_id,
        job_name="j" if job_id else None,
        owner=OWNER,
        run=RunSpec(command=("echo",)),
        scheduled_for=at,
        not_before=at,
        queued_at=at,
    )
    await store.enqueue(ex)
    [claimed] = await store.claim(node_id, frozenset(), 1, at)
    assert claimed.id == ex.id
    chunk = OutputChunk(execution_id=ex.id, stream=Stream.STDOUT, offset=0, seq=0, data=b"x\n")
    await store.append_output(ex.id, node_id=node_id, chunks=[chunk])
    outcome = Outcome(state=RunState.SUCCEEDED, exit_code=0, finished_at=at, stdout_bytes=2)
    await store.finish_many(
        [Finish(execution_id=ex.id, outcome=outcome)], node_id=node_id, retry=lambda _: None
    )
    manifest = await write_archive(store, blobs, ex.id)
    assert await store.archive_output(ex.id, manifest=manifest, now=at)
    return ex.id


async def _objects(blobs: BlobStore, execution_id: UUID) -> list[str]:
    return [i.key async for i in blobs.list(run_prefix(execution_id))]


async def test_retention_deletes_what_is_old_and_keeps_each_jobs_newest(
    store: Store, blobs: BlobStore
) -> None:
    node = await store.register_node(
        name="n", tags=frozenset(), capacity=8, ttl=10 * 86400 * 100, now=NOW - timedelta(days=90)
    )
    spec = JobSpec(name="j", owner=OWNER, run=RunSpec(command=("echo",)))
    job = await store.create_job(spec, next_fire_at=None, created_by=OWNER, now=NOW)
    lone = await store.create_job(
        replace(spec, name="k"), next_fire_at=None, created_by=OWNER, now=NOW
    )
    old = [await _archived_run(store, blobs, node.id, job.id, d) for d in (40, 35)]
    recent = await _archived_run(store, blobs, node.id, job.id, 1)
    newest_of_k = await _archived_run(store, blobs, node.id, lone.id, 50)
    adhoc_old = await _archived_run(store, blobs, node.id, None, 31)
    for days, message in ((45, "old"), (31, "old too"), (2, "new")):
        await store.add_event(
            Event(id=0, at=NOW - timedelta(days=days), kind="x", owner=OWNER, message=message)
        )
    for run in [*old, recent, newest_of_k, adhoc_old]:
        assert await _objects(blobs, run)

    policy = RetentionPolicy(run_days=30, runs_per_job=100, event_days=30, batch=2)
    clock = ManualClock(NOW)
    done = await Retention(store, blobs, policy).run_once(clock, node.id)
    assert (done.held, done.runs) == (True, 3)
    assert done.events >= 2  # ours, and the runs' own (run.finished...) of back then

    for run in [*old, adhoc_old]:
        with pytest.raises(NotFound):
            await store.get_execution(run, visible_to=None)
        assert await _objects(blobs, run) == []
        assert await store.output_archive(run) is None
    for run in (recent, newest_of_k):
        assert (await store.get_execution(run, visible_to=None)).state is RunState.SUCCEEDED
        assert await _objects(blobs, run)
        assert await store.output_archive(run) is not None
    left = await store.list_events(visible_to=None)
    assert all(e.at >= NOW - timedelta(days=30) for e in left)
    assert "new" in [e.message for e in left]

    # Another node does nothing while this one holds the lease; later, the count rule.
    other = uuid4()
    assert not (await Retention(store, blobs, policy).run_once(clock, other)).held
    await clock.advance(policy.every * 2 + 31)
    by_count = replace(policy, runs_per_job=1, run_days=0)
    done = await Retention(store, blobs, by_count).run_once(clock, other)
    assert (done.held, done.runs) == (True, 0)  # j has one run left (its newest), k too
    assert (await store.get_execution(recent, visible_to=None)).id == recent
