"""Builders of model objects for the store tests."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

from cronhive.errors import Fenced
from cronhive.model import Execution, JobSpec, Outcome, RunSpec, RunState
from cronhive.store import Finish, FiringBatch, RetryDecider, Store

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ALICE = "user:alice"
BOB = "user:bob"
SEES_ALICE = frozenset({ALICE})
SEES_BOB = frozenset({BOB})


StoreFactory = Callable[[], Awaitable[Store]]


def at(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


def spec(
    name: str = "backup", owner: str = ALICE, tags: frozenset[str] = frozenset(), **kw: object
) -> JobSpec:
    return JobSpec(
        name=name,
        owner=owner,
        run=RunSpec(command=("/bin/echo", name), env={"A": "1"}, target_tags=tags),
        **kw,  # type: ignore[arg-type]
    )


def execution(
    *,
    job_id: UUID | None = None,
    owner: str = ALICE,
    tags: frozenset[str] = frozenset(),
    scheduled_for: datetime = NOW,
    not_before: datetime = NOW,
    queued_at: datetime = NOW,
    attempt: int = 1,
    state: RunState = RunState.QUEUED,
) -> Execution:
    return Execution(
        id=uuid4(),
        job_id=job_id,
        job_name=None if job_id is None else "backup",
        owner=owner,
        run=RunSpec(command=("/bin/true",), target_tags=tags),
        scheduled_for=scheduled_for,
        attempt=attempt,
        state=state,
        not_before=not_before,
        queued_at=queued_at,
    )


async def finish_one(
    store: Store, execution_id: UUID, *, node_id: UUID, outcome: Outcome, retry: RetryDecider
) -> tuple[Execution, Execution | None]:
    """One run's end through `finish_many` (the production path); Fenced where it gives
    None (the run is no longer running on `node_id`)."""
    [done] = await store.finish_many(
        [Finish(execution_id=execution_id, outcome=outcome)], node_id=node_id, retry=retry
    )
    if done is None:
        raise Fenced(f"run {execution_id} is no longer running on node {node_id}")
    return done


async def insert_one(batch: FiringBatch, ex: Execution) -> bool:
    """One slot through `insert_many`: False if the slot exists already."""
    return ex.id in await batch.insert_many([ex])
