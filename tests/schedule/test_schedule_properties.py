"""Properties that must hold for any schedule and any input text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from cronhive.errors import InvalidSchedule
from cronhive.schedule import parse_schedule

ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata",
         "Pacific/Chatham", "America/St_Johns", "Pacific/Apia"]  # fmt: skip
MINUTES = ["0", "30", "*", "*/7", "15,45", "0-10/5", "59"]
HOURS = ["*", "2", "1,2,3", "*/2", "0-23/5", "3"]
DAYS = ["*", "1", "L", "15-20", "*/3"]
MONTHS = ["*", "3", "10,11", "*/4"]
WEEKDAYS = ["*", "0", "1-5", "5L", "1#2", "SUN"]

crons = st.builds(
    lambda *parts: " ".join(parts),
    st.sampled_from(MINUTES),
    st.sampled_from(HOURS),
    st.sampled_from(DAYS),
    st.sampled_from(MONTHS),
    st.sampled_from(WEEKDAYS),
)
instants = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC)
)
repeated = st.sampled_from(["auto", "first", "last", "both"])
skipped = st.sampled_from(["auto", "shift", "skip"])


@settings(max_examples=300, deadline=None)
@given(crons, st.sampled_from(ZONES), repeated, skipped, instants)
def test_cron_next_after_is_strictly_increasing(
    expr: str, zone: str, rep: str, skip: str, start: datetime
) -> None:
    schedule = parse_schedule("cron", expr, timezone=zone, dst_repeated=rep, dst_skipped=skip)
    previous = start
    for _ in range(4):
        got = schedule.next_after(previous)
        assert got is not None
        assert got > previous
        assert got.tzinfo is UTC
        previous = got


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(ZONES), instants, st.integers(1, 40), st.integers(-120, 120))
def test_both_and_shift_never_miss_a_real_matching_minute(
    zone: str, start: datetime, step: int, wiggle: int
) -> None:
    """With BOTH and SKIP, a cron fires at exactly the real instants whose local time matches.

    Checked minute by minute against a brute force over real time (cronsim's own notion).
    """
    expr = f"*/{step} * * * *"
    schedule = parse_schedule("cron", expr, timezone=zone, dst_repeated="both", dst_skipped="skip")
    start = start.replace(second=0, microsecond=0) + timedelta(minutes=wiggle)
    got = schedule.next_after(start)
    assert got is not None
    z = ZoneInfo(zone)
    brute = start + timedelta(minutes=1)
    while brute.astimezone(z).minute % step:
        brute += timedelta(minutes=1)
    assert got == brute


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(["every 90s", "every 5m", "every 1h30m", "7", "every 2d"]), instants)
def test_interval_next_after_is_aligned_and_increasing(expr: str, start: datetime) -> None:
    schedule = parse_schedule("interval", expr)
    got = schedule.next_after(start)
    assert got is not None and got > start
    period = parse_schedule("interval", expr).next_after(got)
    assert period is not None
    step = period - got
    assert got - step <= start
    assert (got - datetime(1970, 1, 1, tzinfo=UTC)) % step == timedelta(0)


CRONISH = "0123456789*/,-LW#?@ abcdefhilmnorstuwyADEFJMNORSTUWZ:+.T\t\n"


@settings(max_examples=500, deadline=None)
@given(
    st.one_of(st.sampled_from(["cron", "interval", "once"]), st.text(max_size=10)),
    st.one_of(st.text(alphabet=CRONISH, max_size=40), st.text(max_size=40)),
    st.one_of(st.sampled_from(["UTC", "Europe/Berlin"]), st.text(max_size=30)),
    st.one_of(repeated, st.text(max_size=8)),
    st.one_of(skipped, st.text(max_size=8)),
)
def test_parse_schedule_raises_only_invalid_schedule(
    kind: str, expr: str, zone: str, rep: str, skip: str
) -> None:
    try:
        schedule = parse_schedule(kind, expr, timezone=zone, dst_repeated=rep, dst_skipped=skip)
    except InvalidSchedule as exc:
        assert exc.field in {"schedule", "timezone", "dst_repeated", "dst_skipped"}
        assert "\n" not in str(exc)  # the CLI prints it as one line
        return
    schedule.describe()
    got = schedule.next_after(datetime(2026, 1, 1, tzinfo=UTC))
    assert got is None or got > datetime(2026, 1, 1, tzinfo=UTC)


@settings(max_examples=500, deadline=None)
@given(
    st.sampled_from(["cron", "interval", "once"]),
    st.one_of(
        st.text(alphabet=CRONISH, max_size=40),
        st.lists(
            st.text(alphabet=CRONISH[:20], min_size=1, max_size=6), min_size=5, max_size=6
        ).map(" ".join),
    ),
    st.sampled_from(ZONES),
)
def test_any_expression_parses_or_raises_invalid_schedule(kind: str, expr: str, zone: str) -> None:
    try:
        schedule = parse_schedule(kind, expr, timezone=zone)
    except InvalidSchedule as exc:
        assert exc.field == "schedule"
        return
    got = schedule.next_after(datetime(2026, 1, 1, tzinfo=UTC))
    assert got is None or got > datetime(2026, 1, 1, tzinfo=UTC)
