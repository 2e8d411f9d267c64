"""Per-owner quotas, enforced in one place: the gRPC services and the web JSON API call
these before they write, the engine's claim gets `run_caps`.

    check_job(store, policy, who, owner, spec, before=None, now=...)   create / edit
    check_new_run(store, policy, who, owner)                           start / trigger
    run_caps(policy) -> RunCaps                                        for the claim

The counts are read before the write, not in its transaction: requests racing each
other may overshoot a count limit by as many as race (never by more). The scheduler's
own fires are not refused: a job's concurrency policy bounds those, and the claim's cap
bounds what runs.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from itertools import pairwise

from cronhive.auth.identity import Identity
from cronhive.auth.policy import Policy
from cronhive.errors import InvalidInput, QuotaExceeded
from cronhive.model import JobSpec
from cronhive.schedule import Schedule
from cronhive.store.base import RunCaps, Store

__all__ = ["check_job", "check_new_run", "run_caps", "shortest_gap"]

# Fire times sampled for a schedule's shortest gap, within this span (9 years: each
# calendar pattern, leap days, DST changes).
_SAMPLE = 500
_SPAN = timedelta(days=9 * 366)


def shortest_gap(schedule: Schedule, now: datetime) -> timedelta | None:
    """The shortest time between two consecutive fire times among the next 500 (within
    9 years), or None for fewer than two."""
    fires = schedule.fires_between(now, now + _SPAN, _SAMPLE)
    return min((b - a for a, b in pairwise(fires)), default=None)


def _words(period: timedelta) -> str:
    seconds = int(period.total_seconds())
    for name, size in (("day", 86_400), ("hour", 3_600), ("minute", 60)):
        if seconds % size == 0:
            count = seconds // size
            return f"{count} {name}{'s' if count != 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"


def _check_interval(schedule: Schedule, owner: str, limit: timedelta, now: datetime) -> None:
    gap = shortest_gap(schedule, now)
    if gap is not None and gap < limit:
        raise InvalidInput(
            f"schedule: fires as often as every {_words(gap)}, more often than the "
            f"shortest interval {owner} may schedule (limits.shortest_interval = "
            f"{_words(limit)})",
            field="schedule",
        )


async def check_job(
    store: Store,
    policy: Policy,
    who: Identity,
    owner: str,
    spec: JobSpec,
    *,
    now: datetime,
    before: JobSpec | None = None,
) -> None:
    """Refuses a job `owner` may not have: one job too many (`QuotaExceeded`, new jobs
    and jobs moved to another owner), or a schedule firing more often than the owner's
    shortest interval (`InvalidInput` naming ``schedule``; checked when the schedule or
    the owner changes, so an edit of something else never trips over a newer limit)."""
    limits = policy.limits_for(owner, who)
    moved = before is None or before.owner != owner
    if moved and limits.jobs is not None:
        usage = await store.usage(owner)
        if usage.jobs >= limits.jobs:
            raise QuotaExceeded(
                f"{owner} has {usage.jobs} jobs, the most it may have "
                f"(limits.jobs = {limits.jobs}); delete one first"
            )
    changed = moved or before is None or before.schedule != spec.schedule
    if changed and spec.schedule is not None and limits.shortest_interval is not None:
        _check_interval(spec.schedule, owner, limits.shortest_interval, now)


async def check_new_run(store: Store, policy: Policy, who: Identity, owner: str) -> None:
    """Refuses a new queued run of `owner` (an ad-hoc start or a trigger) when it has as
    many queued as it may (`QuotaExceeded`)."""
    limit = policy.limits_for(owner, who).queued_runs
    if limit is None:
        return
    usage = await store.usage(owner)
    if usage.queued >= limit:
        raise QuotaExceeded(
            f"{owner} has {usage.queued} runs queued, the most it may have "
            f"(limits.queued_runs = {limit}); wait for some to start or stop them"
        )


def run_caps(policy: Policy) -> RunCaps:
    """The claim's caps on running runs: the default's, and those of every user and
    group the policy names whose cap differs (admins by the policy, own limits)."""
    # A user the policy does not name (the claim knows only the owner's name).
    default = policy.limits_for("user:").concurrent_runs
    owners: dict[str, int | None] = {}
    for kind, table in (("user", policy.users), ("group", policy.groups)):
        for name in table:
            cap = policy.limits_for(f"{kind}:{name}").concurrent_runs
            if cap != default:
                owners[f"{kind}:{name}"] = cap
    return RunCaps(default=default, owners=owners)
