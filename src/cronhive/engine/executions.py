"""New executions outside the scheduler (triggers of a job, ad-hoc runs), and when a
job that was just created or changed fires next."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime

from cronhive.model import Execution, Job, JobSpec, Node, RetryPolicy, RunSpec, RunState


def for_slot(
    job: Job,
    slot: datetime,
    now: datetime,
    *,
    state: RunState = RunState.QUEUED,
    reason: str | None = None,
) -> Execution:
    """The first attempt at `slot` of `job`: queued, or recorded as skipped with `reason`.
    It snapshots the job's command and retry policy, so a later edit changes no queued run."""
    return Execution(
        id=uuid.uuid4(),
        job_id=job.id,
        job_name=job.name,
        owner=job.owner,
        run=job.spec.run,
        retry=job.spec.retry,
        scheduled_for=slot,
        state=state,
        reason=reason,
        not_before=now,
        queued_at=now,
        finished_at=now if state.terminal else None,
    )


def triggered(job: Job, now: datetime, run: RunSpec | None = None) -> Execution:
    """A run of `job` now, by hand; `run`: what to run instead of the job's own spec (the
    job's with a trigger's parameters), recorded on the execution like any snapshot."""
    execution = for_slot(job, now, now)
    return execution if run is None else replace(execution, run=run)


def adhoc(owner: str, run: RunSpec, now: datetime, retry: RetryPolicy | None = None) -> Execution:
    """A one-off run of a command, owned by `owner`, belonging to no job."""
    return Execution(
        id=uuid.uuid4(),
        job_id=None,
        job_name=None,
        owner=owner,
        run=run,
        retry=retry or RetryPolicy(),
        scheduled_for=now,
        not_before=now,
        queued_at=now,
    )


def next_fire(spec: JobSpec, now: datetime) -> datetime | None:
    """When an enabled scheduled job fires next, counted from `now`; None otherwise (paused
    or unscheduled). What the API and the web store as `next_fire_at` after a change."""
    if not spec.enabled or spec.schedule is None:
        return None
    return spec.schedule.next_after(now)


def unmatched_tags(tags: frozenset[str], nodes: Iterable[Node], now: datetime) -> str:
    """Why a run with target `tags` would wait: no live node carries them all ("" when
    one does, or when there are no tags). A hint, not a refusal: such a node may join."""
    if not tags or any(n.alive(now) and tags <= n.tags for n in nodes):
        return ""
    return (
        f"no live node carries the tags {', '.join(sorted(tags))}; "
        "its runs wait until one joins (see cronhive nodes)"
    )


def parameters_note(env: Mapping[str, str], args: Sequence[str]) -> str:
    """How a trigger's parameters read in its event: names of the env set (not values:
    events reach more readers than the run), and the count of args."""
    parts = []
    if env:
        parts.append("env " + ", ".join(sorted(env)))
    if args:
        parts.append(f"{len(args)} extra argument{'s' if len(args) != 1 else ''}")
    return f" with {' and '.join(parts)}" if parts else ""
