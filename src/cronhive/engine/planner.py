"""What a due job does at a tick: pure decisions, no I/O, so every policy is testable alone.

Given a job whose `next_fire_at` has passed, the planner lists its slots up to `now`,
applies the misfire policy to slots that are late and the concurrency policy to the ones
that will run, and says where `next_fire_at` moves. Every slot that will not run becomes
a `skipped` execution with its reason: nothing disappears silently.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from uuid import UUID

from cronhive.engine import executions as new
from cronhive.model import Concurrency, Execution, Job, Misfire, RunState

# A slot is on time when fired at most this late; later ones fall to the misfire policy.
ON_TIME = timedelta(seconds=5)
# The most slots one job may produce in one tick; beyond it the job jumps to the present
# and one event says how many slots were passed over (a year of every-second slots would
# otherwise be 31 million rows).
MAX_CATCHUP = 500


@dataclass(kw_only=True)
class Plan:
    queued: list[Execution] = field(default_factory=list)
    skipped: list[Execution] = field(default_factory=list)
    stop: list[UUID] = field(default_factory=list)  # active runs to replace
    next_fire_at: datetime | None = None
    passed_over: int = 0  # slots beyond MAX_CATCHUP, not recorded one by one


def plan(job: Job, now: datetime, active: list[Execution]) -> Plan:
    """Decides the executions for every slot of `job` due at `now`.

    `active` holds the job's queued or running executions (for the concurrency policy).
    """
    schedule = job.spec.schedule
    result = Plan()
    if schedule is None or job.next_fire_at is None:
        return result
    slots: list[datetime] = []
    t: datetime | None = job.next_fire_at
    if job.next_fire_at <= now:
        # One call for the slots due, not one per slot: cheaper for a job far behind.
        first = job.next_fire_at
        slots = [first, *schedule.fires_between(first, now, MAX_CATCHUP - 1)]
        t = schedule.next_after(slots[-1])
    if t is not None and t <= now:
        # Too far behind: jump to the present; the count goes into an event. Counted by
        # arithmetic, not a walk: about a µs per day of outage for cron, not per slot.
        result.passed_over = schedule.count_between(slots[-1], now)
        t = schedule.next_after(now)
    result.next_fire_at = t
    # Fire times a DST gap swallows (fixed-time jobs under dst_skipped=skip) are recorded
    # too, once, when the slot before them is planned.
    bounds = [*slots, t] if t is not None else slots
    for before, after in itertools.pairwise(bounds):
        for wall, gap_end in schedule.dst_skips(before, after):
            reason = (
                f"dst: {wall:%H:%M} does not exist on {wall:%Y-%m-%d} in "
                f"{schedule.timezone} (dst_skipped=skip)"
            )
            result.skipped.append(_execution(job, gap_end, now, RunState.SKIPPED, reason))

    to_run = _apply_misfire(job, now, slots, result)
    busy = [e.id for e in active]
    for slot in to_run:
        if job.spec.concurrency is Concurrency.FORBID and busy:
            result.skipped.append(
                _execution(
                    job, slot, now, RunState.SKIPPED, "overlap: an earlier run is still active"
                )
            )
            continue
        if job.spec.concurrency is Concurrency.REPLACE and busy:
            result.stop.extend(i for i in busy if i not in result.stop)
            # The runs being replaced are stopping; only the new one counts as active.
            busy = []
        execution = _execution(job, slot, now, RunState.QUEUED, None)
        result.queued.append(execution)
        busy.append(execution.id)
    return result


def _apply_misfire(job: Job, now: datetime, slots: list[datetime], result: Plan) -> list[datetime]:
    late = [s for s in slots if now - s > ON_TIME]
    on_time = [s for s in slots if now - s <= ON_TIME]
    policy = job.spec.misfire
    if not late or policy is Misfire.ALL:
        return slots
    if policy is Misfire.SKIP:
        for s in late:
            result.skipped.append(_execution(job, s, now, RunState.SKIPPED, _late(s, now, "skip")))
        return on_time
    # ONCE: the latest late slot stands for all of them, unless an on-time slot runs
    # anyway or the latest is beyond the grace time.
    grace = timedelta(seconds=job.spec.misfire_grace)
    keep = late[-1] if not on_time and now - late[-1] <= grace else None
    for s in late:
        if s != keep:
            reason = _late(s, now, "once") + (
                "; beyond the misfire grace" if keep is None and s == late[-1] else ""
            )
            result.skipped.append(_execution(job, s, now, RunState.SKIPPED, reason))
    return ([keep] if keep else []) + on_time


def _late(slot: datetime, now: datetime, policy: str) -> str:
    return f"misfire: {(now - slot).total_seconds():.0f}s late (policy {policy})"


def _execution(
    job: Job, slot: datetime, now: datetime, state: RunState, reason: str | None
) -> Execution:
    return new.for_slot(job, slot, now, state=state, reason=reason)
