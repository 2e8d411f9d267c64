"""The reused cron iterator, the arithmetic count, the batch listing and the gap reader
agree with the slow, obvious answers.

References: `fresh_next` is the search cronhive used before the iterator was reused (a new
cronsim iterator per question, started early enough for any offset of the next two days);
`naive_count` and the lists iterate `next_after`; `naive_skips` walks every wall time.
Questions come in random order, many near DST changes.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from cronsim import CronSim
from hypothesis import given, settings
from hypothesis import strategies as st

from cronhive.schedule import Schedule, parse_schedule
from cronhive.schedule._dst import DstRepeated, DstSkipped, WallKind, apply_policy, readings

ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata",
         "Pacific/Chatham", "America/St_Johns", "Pacific/Apia", "Europe/London"]  # fmt: skip
# Offset changes to crowd the questions around (local time just before each).
CHANGES = [
    ("Europe/Berlin", "2026-03-29T02:00+01:00"),
    ("Europe/Berlin", "2026-10-25T03:00+02:00"),
    ("America/New_York", "2026-03-08T02:00-05:00"),
    ("America/New_York", "2026-11-01T02:00-04:00"),
    ("Australia/Lord_Howe", "2026-04-05T02:00+11:00"),
    ("Australia/Lord_Howe", "2026-10-04T02:00+10:30"),
    ("Pacific/Chatham", "2026-04-05T03:45+13:45"),
    ("America/St_Johns", "2026-11-01T02:00-02:30"),
    ("Pacific/Apia", "2011-12-30T00:00-10:00"),  # skipped a whole day
]
FIVE = ["* * * * *", "*/7 * * * *", "30 2 * * *", "0,30 2,3 * * *", "15 * * * *",
        "*/20 2 * * *", "0 */2 * * *", "45 1 * * 0", "0 0 L * *", "10 2 * 3,10 *",
        "0 9 * * 1#2", "30 1,2 29 2 *"]  # fmt: skip
SIX = ["* * * * * *", "*/15 * * * * *", "30 */5 2 * * *", "0 0 3 * * *", "* 30 1 * * *"]
POLICIES = [(r, s) for r in ("first", "last", "both") for s in ("shift", "skip")]

near_change = st.builds(
    lambda change, seconds, micro: (
        change[0],
        datetime.fromisoformat(change[1]).astimezone(UTC)
        + timedelta(seconds=seconds, microseconds=micro),
    ),
    st.sampled_from(CHANGES),
    st.integers(-5 * 3600, 5 * 3600),
    st.sampled_from([0, 0, 1, 500_000, 999_999]),
)
anywhere = st.tuples(
    st.sampled_from(ZONES),
    st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC)
    ),
)


def fresh_next(schedule: Schedule, after: datetime) -> datetime | None:
    """The search before iterators were reused: a fresh iterator from the smallest offset."""
    zone = ZoneInfo(schedule.timezone)
    repeated, skipped = DstRepeated(schedule.dst_repeated), DstSkipped(schedule.dst_skipped)
    offset = min(
        (after + timedelta(days=d)).astimezone(zone).utcoffset() or timedelta() for d in (0, 1, 2)
    )
    start = (after + offset).replace(tzinfo=None, microsecond=0) - timedelta(seconds=1)
    best: datetime | None = None
    for wall in CronSim(schedule.expression, start):
        kind, candidates = readings(wall, zone)
        if best is not None and candidates[0] >= best:
            break
        for instant in apply_policy(kind, candidates, repeated, skipped):
            if instant > after and (best is None or instant < best):
                best = instant
    return best


def naive_count(schedule: Schedule, start: datetime, end: datetime) -> int:
    return sum(1 for _ in itertools.takewhile(lambda t: t <= end, schedule.iter_after(start)))


def naive_skips(
    schedule: Schedule, after: datetime, until: datetime
) -> list[tuple[datetime, datetime]]:
    zone = ZoneInfo(schedule.timezone)
    start = (after.astimezone(zone) - timedelta(days=1)).replace(tzinfo=None)
    found = []
    for wall in CronSim(schedule.expression, start):
        kind, candidates = readings(wall, zone)
        if candidates[0] > until:
            break
        if kind is WallKind.SKIPPED and candidates[0] > after:
            found.append((wall, candidates[0]))
    return found


@st.composite
def questions(draw: st.DrawFn) -> tuple[str, list[datetime]]:
    """A zone and instants in random order, most within hours of one of its changes."""
    zone, local = draw(st.sampled_from(CHANGES))
    change = datetime.fromisoformat(local).astimezone(UTC)
    near = st.builds(
        lambda s, us: change + timedelta(seconds=s, microseconds=us),
        st.integers(-5 * 3600, 5 * 3600),
        st.sampled_from([0, 1, 500_000, 999_999]),
    )
    return zone, draw(st.lists(st.one_of(near, near, anywhere.map(lambda z_t: z_t[1])),
                               min_size=1, max_size=12))  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(FIVE + SIX), st.sampled_from(POLICIES), questions())
def test_a_shared_schedule_answers_any_order_of_questions_like_a_fresh_search(
    expr: str, policy: tuple[str, str], asked: tuple[str, list[datetime]]
) -> None:
    zone, instants = asked
    shared = parse_schedule(
        "cron", expr, timezone=zone, dst_repeated=policy[0], dst_skipped=policy[1]
    )
    # Each question, then a few steps forward from it, then the next (maybe earlier) one.
    for after in instants:
        t: datetime | None = after
        for _ in range(3):
            assert t is not None
            got = shared.next_after(t)
            assert got == fresh_next(shared, t), (expr, zone, policy, t)
            t = got


@pytest.mark.parametrize(("zone", "local"), CHANGES)
@pytest.mark.parametrize("expr", ["*/5 * * * * *", "*/20 * * * *", "30 2 * * *", "15,45 1,2 * * *"])
@pytest.mark.parametrize("policy", POLICIES)
def test_walking_through_every_change_matches_a_fresh_search(
    zone: str, local: str, expr: str, policy: tuple[str, str]
) -> None:
    """Forward from 90 minutes before each change to 90 minutes after it, step by step."""
    schedule = parse_schedule(
        "cron", expr, timezone=zone, dst_repeated=policy[0], dst_skipped=policy[1]
    )
    change = datetime.fromisoformat(local).astimezone(UTC)
    t: datetime | None = change - timedelta(minutes=90)
    steps = 0
    while t is not None and t < change + timedelta(minutes=90):
        got = schedule.next_after(t)
        # A fresh search near a fall-back is slow (the point of the cursor): check each
        # step that is not the usual 5 s, and a sample of the rest.
        if got is None or got - t != timedelta(seconds=5) or steps % 50 == 0:
            assert got == fresh_next(schedule, t), t
        t, steps = got, steps + 1


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(FIVE + SIX),
    st.sampled_from([*POLICIES, ("auto", "auto")]),
    st.one_of(near_change, anywhere),
    st.integers(0, 36 * 3600),
    st.sampled_from([0, 1, 250_000]),
)
def test_count_between_equals_the_naive_count(
    expr: str, policy: tuple[str, str], where: tuple[str, datetime], length: int, micro: int
) -> None:
    zone, start = where
    if len(expr.split()) == 6:
        length //= 24  # at most 1.5 hours of every-second slots
    schedule = parse_schedule("cron", expr, timezone=zone, dst_repeated=policy[0],
                              dst_skipped=policy[1])  # fmt: skip
    end = start + timedelta(seconds=length, microseconds=micro)
    assert schedule.count_between(start, end) == naive_count(schedule, start, end)


@pytest.mark.parametrize(("zone", "local"), CHANGES)
@pytest.mark.parametrize("expr", ["30 2 * * *", "0 * * * *", "*/30 1-3 * * *", "0 9 * * 1#2"])
def test_count_between_over_years_equals_the_naive_count(zone: str, local: str, expr: str) -> None:
    schedule = parse_schedule("cron", expr, timezone=zone)
    start = datetime.fromisoformat(local) - timedelta(days=400)
    end = start + timedelta(days=800)
    assert schedule.count_between(start, end) == naive_count(schedule, start, end)


@pytest.mark.parametrize(("zone", "local"), CHANGES)
@pytest.mark.parametrize(("expr", "hours"), [("*/5 * * * *", 24), ("*/15 * * * * *", 2)])
@pytest.mark.parametrize("policy", [*POLICIES, ("auto", "auto")])
def test_count_between_across_each_change_equals_the_naive_count(
    zone: str, local: str, expr: str, hours: int, policy: tuple[str, str]
) -> None:
    schedule = parse_schedule(
        "cron", expr, timezone=zone, dst_repeated=policy[0], dst_skipped=policy[1]
    )
    change = datetime.fromisoformat(local).astimezone(UTC)
    for start, end in [
        (change - timedelta(hours=hours), change + timedelta(hours=hours)),
        (change - timedelta(minutes=20), change + timedelta(minutes=50)),  # inside the hour
        (change + timedelta(minutes=10), change + timedelta(hours=hours)),
    ]:
        assert schedule.count_between(start, end) == naive_count(schedule, start, end)


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["every 1s", "every 90s", "every 7m", "every 1h30m", "every 2d"]),
    st.datetimes(
        min_value=datetime(1960, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC)
    ),
    st.integers(0, 400_000),
)
def test_interval_count_is_arithmetic_and_exact(expr: str, start: datetime, length: int) -> None:
    schedule = parse_schedule("interval", expr)
    end = start + timedelta(seconds=length)
    if length < 20_000:
        assert schedule.count_between(start, end) == naive_count(schedule, start, end)
    # additive over a split, whatever the length
    middle = start + timedelta(seconds=length // 3)
    assert schedule.count_between(start, end) == (
        schedule.count_between(start, middle) + schedule.count_between(middle, end)
    )


def test_count_between_edges() -> None:
    minute = parse_schedule("cron", "* * * * *", timezone="Europe/Berlin")
    t = datetime(2026, 7, 1, 12, tzinfo=UTC)
    assert minute.count_between(t, t) == 0
    assert minute.count_between(t, t - timedelta(hours=1)) == 0
    assert minute.count_between(t - timedelta(microseconds=1), t) == 1  # end is included
    assert minute.count_between(t, t + timedelta(days=30)) == 30 * 24 * 60
    once = parse_schedule("once", "at 2026-12-01T09:00", timezone="Europe/Berlin",
                          dst_repeated="both")  # fmt: skip
    assert once.count_between(t, t + timedelta(days=365)) == 1
    both = parse_schedule("once", "at 2026-10-25T02:30", timezone="Europe/Berlin",
                          dst_repeated="both")  # fmt: skip
    assert both.count_between(t, t + timedelta(days=365)) == 2
    far = datetime(9999, 12, 31, 23, 0, tzinfo=UTC)
    assert minute.count_between(far - timedelta(days=1), far) >= 0
    with pytest.raises(ValueError, match="aware"):
        minute.count_between(datetime(2026, 1, 1), t)


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from(["30 2 * * *", "0,30 2,3 * * *", "15 2 * * *", "45 2 * * *", "* 30 2 * * *",
                     "0-50/10 0-3 * * *", "0 0 * * *"]),
    st.one_of(near_change, anywhere),
    st.integers(0, 3 * 86_400),
)  # fmt: skip
def test_dst_skips_reads_only_the_gaps_and_finds_what_a_walk_finds(
    expr: str, where: tuple[str, datetime], length: int
) -> None:
    zone, after = where
    schedule = parse_schedule("cron", expr, timezone=zone, dst_skipped="skip")
    until = after + timedelta(seconds=length)
    assert schedule.dst_skips(after, until) == naive_skips(schedule, after, until)


@settings(max_examples=250, deadline=None)
@given(
    st.one_of(
        st.sampled_from(FIVE + SIX).map(lambda e: ("cron", e)),
        st.sampled_from(["every 1s", "every 90s", "every 1h"]).map(lambda e: ("interval", e)),
        st.just(("once", "at 2026-10-25T02:30")),
    ),
    st.sampled_from([*POLICIES, ("auto", "auto")]),
    st.one_of(near_change, anywhere),
    st.integers(0, 6 * 3600),
    st.integers(0, 600),
)
def test_fires_between_is_iter_after_cut_at_end_and_limit(
    kind_expr: tuple[str, str],
    policy: tuple[str, str],
    where: tuple[str, datetime],
    length: int,
    limit: int,
) -> None:
    kind, expr = kind_expr
    zone, start = where
    if kind == "once":
        start = datetime(2026, 10, 24, 22, tzinfo=UTC) + timedelta(seconds=length)
    end = start + timedelta(seconds=length)

    def make() -> Schedule:
        return parse_schedule(
            kind, expr, timezone=zone, dst_repeated=policy[0], dst_skipped=policy[1]
        )

    expected = list(
        itertools.islice(itertools.takewhile(lambda t: t <= end, make().iter_after(start)), limit)
    )
    shared = make()
    assert shared.fires_between(start, end, limit) == expected
    assert shared.fires_between(start, end, limit) == expected  # asked again: same answer


@pytest.mark.parametrize(("zone", "local"), CHANGES)
@pytest.mark.parametrize("expr", ["*/10 * * * * *", "* * * * *", "*/20 2 * * *", "30 2 * * *"])
@pytest.mark.parametrize("policy", POLICIES)
def test_fires_between_through_every_change(
    zone: str, local: str, expr: str, policy: tuple[str, str]
) -> None:
    change = datetime.fromisoformat(local).astimezone(UTC)
    start, end = change - timedelta(hours=2), change + timedelta(hours=2)

    def make() -> Schedule:
        return parse_schedule(
            "cron", expr, timezone=zone, dst_repeated=policy[0], dst_skipped=policy[1]
        )

    expected = list(itertools.takewhile(lambda t: t <= end, make().iter_after(start)))
    assert make().fires_between(start, end, 10_000) == expected
