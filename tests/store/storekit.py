"""Builders of model objects for the store tests."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

from cronhive.model import Execution, JobSpec, RunSpec, RunState
from cronhive.store import Store

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
