"""Contract: a run's own limits are kept on jobs and on the runs they queue, and what a
node applied is recorded with the run's end (both backends; PostgreSQL's batched end)."""

from __future__ import annotations

from dataclasses import replace

from storekit import ALICE, NOW, at, execution, spec

from cronhive.model import Outcome, RunLimits, RunState
from cronhive.store import Finish, Store

LIMITS = RunLimits(memory_bytes=64 << 20, processes=5, cpu_weight=50)


async def test_job_limits_round_trip_and_clear(store: Store) -> None:
    base = spec()
    limited = replace(base, run=replace(base.run, limits=LIMITS))
    job = await store.create_job(limited, next_fire_at=None, created_by=ALICE, now=NOW)
    got = await store.get_job(job.id, visible_to=None)
    assert got.spec.run.limits == LIMITS
    changed = replace(got.spec, run=replace(got.spec.run, limits=None))
    await store.update_job(job.id, changed, next_fire_at=None, now=at(1), visible_to=None)
    assert (await store.get_job(job.id, visible_to=None)).spec.run.limits is None


async def test_the_run_snapshots_its_limits_and_records_what_was_applied(store: Store) -> None:
    node = await store.register_node(name="n", tags=frozenset(), capacity=9, ttl=30, now=NOW)
    asked = execution()
    await store.enqueue(replace(asked, run=replace(asked.run, limits=LIMITS)))
    await store.enqueue(execution())
    first, second = await store.claim(node.id, frozenset(), 2, NOW)
    assert {first.run.limits, second.run.limits} == {LIMITS, None}
    record = "rlimit: memory 64M (RLIMIT_AS, per process)"
    mine = first if first.run.limits else second
    other = second if mine is first else first
    results = await store.finish_many(
        [
            Finish(
                execution_id=mine.id,
                outcome=Outcome(
                    state=RunState.FAILED, exit_code=1, finished_at=at(1), limits_applied=record
                ),
            ),
            Finish(
                execution_id=other.id,
                outcome=Outcome(state=RunState.SUCCEEDED, exit_code=0, finished_at=at(1)),
            ),
        ],
        node_id=node.id,
        retry=lambda _: None,
    )
    assert all(r is not None for r in results)
    done = await store.get_execution(mine.id, visible_to=None)
    assert (done.limits_applied, done.run.limits) == (record, LIMITS)
    assert (await store.get_execution(other.id, visible_to=None)).limits_applied is None
