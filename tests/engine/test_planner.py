"""The planner's decisions, table by table: misfire and concurrency policies, catch-up."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from cronhive.engine.planner import MAX_CATCHUP, plan
from cronhive.model import (
    Concurrency,
    Execution,
    Job,
    JobSpec,
    Misfire,
    RunSpec,
    RunState,
)
from cronhive.schedule import parse_schedule

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def job(
    expr: str = "* * * * *",
    *,
    next_fire_at: datetime = T0,
    misfire: Misfire = Misfire.ONCE,
    concurrency: Concurrency = Concurrency.ALLOW,
    grace: float = 300.0,
) -> Job:
    kind = "interval" if expr.startswith("every") else "cron"
    return Job(
        id=uuid.uuid4(),
        spec=JobSpec(
            name="j",
            owner="user:alice",
            run=RunSpec(command=("/bin/true",)),
            schedule=parse_schedule(kind, expr),
            misfire=misfire,
            concurrency=concurrency,
            misfire_grace=grace,
        ),
        next_fire_at=next_fire_at,
        created_at=T0,
        updated_at=T0,
    )


def active_run(j: Job) -> Execution:
    return Execution(
        id=uuid.uuid4(),
        job_id=j.id,
        job_name=j.name,
        owner=j.owner,
        run=j.spec.run,
        scheduled_for=T0 - timedelta(minutes=1),
        state=RunState.RUNNING,
        not_before=T0,
        queued_at=T0,
    )


def test_on_time_slot_is_queued_and_next_fire_advances() -> None:
    p = plan(job(), T0 + timedelta(milliseconds=20), [])
    assert [e.scheduled_for for e in p.queued] == [T0]
    assert p.queued[0].state is RunState.QUEUED and p.queued[0].attempt == 1
    assert p.skipped == [] and p.next_fire_at == T0 + timedelta(minutes=1)


def test_not_due_yet_plans_nothing_but_keeps_next_fire() -> None:
    p = plan(job(next_fire_at=T0 + timedelta(minutes=1)), T0, [])
    assert p.queued == [] and p.next_fire_at == T0 + timedelta(minutes=1)


@pytest.mark.parametrize(
    ("misfire", "down_minutes", "queued", "skipped"),
    [
        # Down 10 minutes: slots T0..T0+9 late, T0+10 on time.
        (Misfire.ALL, 10, list(range(11)), []),
        (Misfire.SKIP, 10, [10], list(range(10))),
        # once: an on-time slot runs anyway, so every late one is skipped.
        (Misfire.ONCE, 10, [10], list(range(10))),
    ],
)
def test_misfire_policies(
    misfire: Misfire, down_minutes: int, queued: list[int], skipped: list[int]
) -> None:
    now = T0 + timedelta(minutes=down_minutes, seconds=1)
    p = plan(job(misfire=misfire), now, [])
    assert [e.scheduled_for for e in p.queued] == [T0 + timedelta(minutes=m) for m in queued]
    assert [e.scheduled_for for e in p.skipped] == [T0 + timedelta(minutes=m) for m in skipped]
    assert all(e.state is RunState.SKIPPED and "misfire" in (e.reason or "") for e in p.skipped)
    assert p.next_fire_at == T0 + timedelta(minutes=down_minutes + 1)


def test_misfire_once_runs_latest_late_slot_within_grace() -> None:
    j = job("0 * * * *", misfire=Misfire.ONCE, grace=3600)
    now = T0 + timedelta(hours=2, minutes=30)  # slots 12:00, 13:00, 14:00 all late
    p = plan(j, now, [])
    assert [e.scheduled_for for e in p.queued] == [T0 + timedelta(hours=2)]
    assert [e.scheduled_for for e in p.skipped] == [T0, T0 + timedelta(hours=1)]


def test_misfire_once_beyond_grace_skips_everything_with_reason() -> None:
    j = job("0 * * * *", misfire=Misfire.ONCE, grace=60)
    p = plan(j, T0 + timedelta(hours=2, minutes=30), [])
    assert p.queued == []
    assert len(p.skipped) == 3
    assert "beyond the misfire grace" in (p.skipped[-1].reason or "")


def test_forbid_skips_while_a_run_is_active() -> None:
    j = job(concurrency=Concurrency.FORBID)
    p = plan(j, T0, [active_run(j)])
    assert p.queued == []
    assert [e.reason for e in p.skipped] == ["overlap: an earlier run is still active"]


def test_forbid_runs_once_free_and_counts_its_own_new_run() -> None:
    j = job(misfire=Misfire.ALL, concurrency=Concurrency.FORBID)
    p = plan(j, T0 + timedelta(minutes=2), [])
    # The first slot queues a run; the two after it overlap with that run.
    assert [e.scheduled_for for e in p.queued] == [T0]
    assert len(p.skipped) == 2


def test_replace_stops_the_active_run() -> None:
    j = job(concurrency=Concurrency.REPLACE)
    old = active_run(j)
    p = plan(j, T0, [old])
    assert p.stop == [old.id] and len(p.queued) == 1


def test_allow_runs_alongside() -> None:
    j = job(concurrency=Concurrency.ALLOW)
    p = plan(j, T0, [active_run(j)])
    assert len(p.queued) == 1 and p.stop == [] and p.skipped == []


def test_far_behind_jumps_to_the_present_and_counts_what_it_passed_over() -> None:
    j = job("every 1s", misfire=Misfire.SKIP)
    now = T0 + timedelta(seconds=MAX_CATCHUP + 99.5)
    p = plan(j, now, [])
    assert len(p.skipped) + len(p.queued) == MAX_CATCHUP
    assert p.passed_over == 100
    assert p.next_fire_at == T0 + timedelta(seconds=MAX_CATCHUP + 100)


def test_a_fire_time_lost_to_a_dst_gap_is_recorded_as_skipped() -> None:
    """Europe/Berlin jumps from 02:00 to 03:00 on 2026-03-29: a daily 02:30 job under
    dst_skipped=skip does not run that day, and the history says so."""
    sched = parse_schedule("cron", "30 2 * * *", timezone="Europe/Berlin", dst_skipped="skip")
    j = job()
    j = Job(
        id=j.id,
        spec=JobSpec(name="j", owner="user:alice", run=j.spec.run, schedule=sched),
        next_fire_at=datetime.fromisoformat("2026-03-28T02:30:00+01:00"),
        created_at=T0,
        updated_at=T0,
    )
    p = plan(j, datetime.fromisoformat("2026-03-28T02:30:01+01:00"), [])
    assert [e.scheduled_for for e in p.queued] == [j.next_fire_at]
    assert p.next_fire_at == datetime.fromisoformat("2026-03-30T02:30:00+02:00")
    [skip] = p.skipped
    assert skip.scheduled_for == datetime.fromisoformat("2026-03-29T03:00:00+02:00")
    assert skip.reason == (
        "dst: 02:30 does not exist on 2026-03-29 in Europe/Berlin (dst_skipped=skip)"
    )
    # The default (shift) loses nothing, so records nothing.
    shifted = Job(
        id=j.id,
        spec=JobSpec(
            name="j",
            owner="user:alice",
            run=j.spec.run,
            schedule=parse_schedule("cron", "30 2 * * *", timezone="Europe/Berlin"),
        ),
        next_fire_at=j.next_fire_at,
        created_at=T0,
        updated_at=T0,
    )
    p = plan(shifted, datetime.fromisoformat("2026-03-28T02:30:01+01:00"), [])
    assert p.skipped == []
    assert p.next_fire_at == datetime.fromisoformat("2026-03-29T03:00:00+02:00")


def _behind(expr: str, zone: str, first: datetime, misfire: Misfire, **policy: str) -> Job:
    kind = "interval" if expr.startswith("every") else "cron"
    return Job(
        id=uuid.uuid4(),
        spec=JobSpec(
            name="j",
            owner="user:alice",
            run=RunSpec(command=("/bin/true",)),
            schedule=parse_schedule(kind, expr, timezone=zone, **policy),
            misfire=misfire,
        ),
        next_fire_at=first,
        created_at=T0,
        updated_at=T0,
    )


@pytest.mark.parametrize("misfire", [Misfire.SKIP, Misfire.ONCE, Misfire.ALL])
def test_a_minute_job_after_a_9_hour_outage(misfire: Misfire) -> None:
    """540 minutes down (541 slots due, the last on time): the oldest MAX_CATCHUP slots
    are recorded, the other 41 counted, and the job moves to the present."""
    j = _behind("* * * * *", "Europe/Berlin", T0, misfire)
    now = T0 + timedelta(hours=9, seconds=1)
    p = plan(j, now, [])
    recorded = sorted(e.scheduled_for for e in p.queued + p.skipped)
    assert recorded == [T0 + timedelta(minutes=m) for m in range(MAX_CATCHUP)]
    assert p.passed_over == 541 - MAX_CATCHUP
    assert p.next_fire_at == T0 + timedelta(hours=9, minutes=1)
    if misfire is Misfire.ALL:
        assert len(p.queued) == MAX_CATCHUP and p.skipped == []
    else:  # every recorded slot is over 40 minutes late: beyond the 300 s grace too
        assert p.queued == [] and len(p.skipped) == MAX_CATCHUP
        assert all(f"(policy {misfire.value})" in (e.reason or "") for e in p.skipped)
    if misfire is Misfire.ONCE:
        assert "beyond the misfire grace" in (p.skipped[-1].reason or "")


@pytest.mark.parametrize("expr", ["every 1s", "* * * * * *"])
def test_an_every_second_job_after_a_30_day_outage(expr: str) -> None:
    j = _behind(expr, "UTC", T0, Misfire.SKIP)
    now = T0 + timedelta(days=30, milliseconds=500)
    p = plan(j, now, [])
    assert [e.scheduled_for for e in p.skipped] == [
        T0 + timedelta(seconds=s) for s in range(MAX_CATCHUP)
    ]
    assert all(e.state is RunState.SKIPPED for e in p.skipped) and p.queued == []
    assert p.skipped[0].reason == "misfire: 2592000s late (policy skip)"
    assert p.passed_over == 30 * 86_400 + 1 - MAX_CATCHUP  # T0 .. T0 + 30 days, both ends
    assert p.next_fire_at == T0 + timedelta(days=30, seconds=1)


@pytest.mark.parametrize(
    ("repeated", "lost"),
    [("auto", 0), ("both", 0), ("last", 3600), ("first", 3600)],
)
def test_the_passed_over_count_follows_the_dst_policy(repeated: str, lost: int) -> None:
    """Down 30 days across Berlin's fall-back (2026-10-25): an every-second wildcard job
    fires every real second by default; `first` or `last` drop one pass of the hour."""
    first = datetime.fromisoformat("2026-10-10T12:00:00+02:00")
    j = _behind("* * * * * *", "Europe/Berlin", first, Misfire.SKIP, dst_repeated=repeated)
    p = plan(j, first + timedelta(days=30), [])
    assert len(p.skipped) == MAX_CATCHUP
    assert p.passed_over == 30 * 86_400 + 1 - lost - MAX_CATCHUP
    assert p.next_fire_at == first + timedelta(days=30, seconds=1)


@pytest.mark.parametrize(
    ("expr", "days"), [("* * * * *", 2), ("*/2 2 * * *", 2), ("30 2 * * *", 800)]
)
def test_passed_over_equals_a_walk_over_the_slots_across_dst_changes(expr: str, days: int) -> None:
    """Down across Berlin's spring gap (and, for the daily job, two years of changes):
    recorded plus passed over is every slot a walk finds, once."""
    first = datetime.fromisoformat("2026-03-28T12:00:00+01:00")
    now = first + timedelta(days=days)
    j = _behind(expr, "Europe/Berlin", first, Misfire.ALL)
    assert j.spec.schedule is not None
    walk = [first, *itertools.takewhile(lambda t: t <= now, j.spec.schedule.iter_after(first))]
    p = plan(j, now, [])
    assert [e.scheduled_for for e in p.queued] == walk[:MAX_CATCHUP]
    assert p.passed_over == max(0, len(walk) - MAX_CATCHUP)
    assert p.next_fire_at == j.spec.schedule.next_after(now)
