"""Cron syntax (macros, seconds, L, #), intervals, once, durations, descriptions, errors."""

from __future__ import annotations

import dataclasses
import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from cronhive.errors import InvalidInput, InvalidSchedule
from cronhive.schedule import (
    DstRepeated,
    DstSkipped,
    Schedule,
    ScheduleKind,
    kind_of,
    parse_duration,
    parse_schedule,
)

AFTER = datetime.fromisoformat("2026-01-15T10:20:30+00:00")


def upcoming(schedule: Schedule, after: datetime, n: int) -> list[str]:
    zone = ZoneInfo(schedule.timezone)
    times = itertools.islice(schedule.iter_after(after), n)
    return [t.astimezone(zone).isoformat() for t in times]


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("@yearly", ["2027-01-01T00:00:00+00:00"]),
        ("@annually", ["2027-01-01T00:00:00+00:00"]),
        ("@monthly", ["2026-02-01T00:00:00+00:00", "2026-03-01T00:00:00+00:00"]),
        ("@weekly", ["2026-01-18T00:00:00+00:00", "2026-01-25T00:00:00+00:00"]),
        ("@daily", ["2026-01-16T00:00:00+00:00"]),
        ("@midnight", ["2026-01-16T00:00:00+00:00"]),
        ("@hourly", ["2026-01-15T11:00:00+00:00", "2026-01-15T12:00:00+00:00"]),
        ("@DAILY", ["2026-01-16T00:00:00+00:00"]),
        # six fields: the first is seconds
        ("*/15 * * * * *", ["2026-01-15T10:20:45+00:00", "2026-01-15T10:21:00+00:00"]),
        ("5 0 3 * * *", ["2026-01-16T03:00:05+00:00"]),
        # L: last day of the month; 5L: last Friday; 1#2: second Monday
        ("0 0 L * *", ["2026-01-31T00:00:00+00:00", "2026-02-28T00:00:00+00:00"]),
        ("0 9 * * 5L", ["2026-01-30T09:00:00+00:00", "2026-02-27T09:00:00+00:00"]),
        ("0 9 * * 1#2", ["2026-02-09T09:00:00+00:00", "2026-03-09T09:00:00+00:00"]),
        ("0 9 * * MON-FRI", ["2026-01-16T09:00:00+00:00", "2026-01-19T09:00:00+00:00"]),
        ("  0   9 * JAN,FEB *  ", ["2026-01-16T09:00:00+00:00"]),
    ],
)
def test_cron_syntax(expr: str, expected: list[str]) -> None:
    assert upcoming(parse_schedule("cron", expr), AFTER, len(expected)) == expected


def test_cron_in_a_zone_returns_utc_and_is_strictly_after() -> None:
    schedule = parse_schedule("cron", "0 3 * * *", timezone="Europe/Berlin")
    on_the_dot = datetime.fromisoformat("2026-01-16T03:00:00+01:00")
    got = schedule.next_after(on_the_dot)
    assert got == datetime.fromisoformat("2026-01-17T02:00:00+00:00")
    assert got is not None and got.tzinfo is UTC


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        # aligned to the Unix epoch, not to the instant asked about
        ("every 5m", ["2026-01-15T10:25:00+00:00", "2026-01-15T10:30:00+00:00"]),
        ("every 90s", ["2026-01-15T10:21:00+00:00", "2026-01-15T10:22:30+00:00"]),
        ("every 1h30m", ["2026-01-15T10:30:00+00:00", "2026-01-15T12:00:00+00:00"]),
        ("45", ["2026-01-15T10:21:00+00:00", "2026-01-15T10:21:45+00:00"]),
        ("2d", ["2026-01-17T00:00:00+00:00", "2026-01-19T00:00:00+00:00"]),
    ],
)
def test_interval_is_epoch_aligned(expr: str, expected: list[str]) -> None:
    assert upcoming(parse_schedule("interval", expr), AFTER, len(expected)) == expected


def test_interval_ignores_the_zone_for_alignment() -> None:
    berlin = parse_schedule("interval", "every 1h", timezone="Asia/Kolkata")
    assert berlin.next_after(AFTER) == datetime(2026, 1, 15, 11, tzinfo=UTC)
    on_boundary = datetime(2026, 1, 15, 11, tzinfo=UTC)
    assert berlin.next_after(on_boundary) == datetime(2026, 1, 15, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("expr", "zone", "repeated", "skipped", "expected"),
    [
        ("at 2026-12-01T09:00:00+01:00", "UTC", "auto", "auto", ["2026-12-01T08:00:00+00:00"]),
        ("2026-12-01T09:00", "Europe/Berlin", "auto", "auto", ["2026-12-01T09:00:00+01:00"]),
        ("at 2026-12-01T08:00Z", "Europe/Berlin", "auto", "auto", ["2026-12-01T09:00:00+01:00"]),
        # naive wall times obey the DST policy like a fixed-time cron job
        ("at 2026-03-29T02:30", "Europe/Berlin", "auto", "auto", ["2026-03-29T03:00:00+02:00"]),
        ("at 2026-10-25T02:30", "Europe/Berlin", "auto", "auto", ["2026-10-25T02:30:00+02:00"]),
        ("at 2026-10-25T02:30", "Europe/Berlin", "last", "auto", ["2026-10-25T02:30:00+01:00"]),
        (
            "at 2026-10-25T02:30",
            "Europe/Berlin",
            "both",
            "auto",
            ["2026-10-25T02:30:00+02:00", "2026-10-25T02:30:00+01:00"],
        ),
    ],
)
def test_once(expr: str, zone: str, repeated: str, skipped: str, expected: list[str]) -> None:
    schedule = parse_schedule(
        "once", expr, timezone=zone, dst_repeated=repeated, dst_skipped=skipped
    )
    start = datetime(2026, 1, 1, tzinfo=UTC)
    assert upcoming(schedule, start, 5) == expected
    last = datetime.fromisoformat(expected[-1])
    assert schedule.next_after(last) is None


def test_once_in_a_skipped_time_with_skip_never_fires_so_is_refused() -> None:
    with pytest.raises(InvalidSchedule, match="does not exist") as info:
        parse_schedule("once", "at 2026-03-29T02:30", timezone="Europe/Berlin", dst_skipped="skip")
    assert info.value.field == "schedule"


@pytest.mark.parametrize(
    ("kind", "expr", "zone", "expected"),
    [
        ("cron", "0 3 * * *", "Europe/Berlin", "at 03:00 every day (Europe/Berlin)"),
        ("cron", "@hourly", "UTC", "at the start of every hour (UTC)"),
        ("cron", "0 9 * * 1#2", "UTC", "at 09:00 on the second Monday of the month (UTC)"),
        ("interval", "every 5m", "UTC", "every 5 minutes"),
        ("interval", "every 90s", "UTC", "every 90 seconds"),
        ("interval", "every 1h30m", "UTC", "every 90 minutes"),
        ("interval", "1h", "UTC", "every hour"),
        ("interval", "every 2d", "UTC", "every 2 days"),
        ("once", "at 2026-12-01T08:00Z", "Europe/Berlin", "once at 2026-12-01T09:00:00+01:00"),
    ],
)
def test_describe(kind: str, expr: str, zone: str, expected: str) -> None:
    assert parse_schedule(kind, expr, timezone=zone).describe() == expected


def test_schedule_from_stored_strings_equals_typed_one() -> None:
    stored = parse_schedule(
        "cron", "0 3 * * *", timezone="Europe/Berlin", dst_repeated="both", dst_skipped="skip"
    )
    typed = Schedule(
        kind=ScheduleKind.CRON,
        expression="0 3 * * *",
        timezone="Europe/Berlin",
        dst_repeated=DstRepeated.BOTH,
        dst_skipped=DstSkipped.SKIP,
    )
    assert stored == typed and hash(stored) == hash(typed)
    assert stored.kind is ScheduleKind.CRON and stored.dst_repeated is DstRepeated.BOTH
    with pytest.raises(InvalidSchedule):
        dataclasses.replace(typed, timezone="Nowhere/Special")


def test_kind_of() -> None:
    assert kind_of("every 5m") is ScheduleKind.INTERVAL
    assert kind_of("at 2026-01-01T00:00") is ScheduleKind.ONCE
    assert kind_of("@daily") is ScheduleKind.CRON
    assert kind_of("*/5 * * * *") is ScheduleKind.CRON


def test_next_after_refuses_naive() -> None:
    with pytest.raises(ValueError, match="aware"):
        parse_schedule("cron", "@daily").next_after(datetime(2026, 1, 1))


def test_far_future_is_exhausted_not_an_error() -> None:
    end = datetime(9999, 12, 31, 23, 59, tzinfo=UTC)
    assert parse_schedule("cron", "@daily", timezone="Europe/Berlin").next_after(end) is None
    assert parse_schedule("interval", "every 2d").next_after(end) is None


@pytest.mark.parametrize(
    ("kind", "expr", "zone", "repeated", "skipped", "field", "words"),
    [
        ("cron", "61 * * * *", "UTC", "auto", "auto", "schedule", "bad minute field '61'"),
        ("cron", "0 24 * * *", "UTC", "auto", "auto", "schedule", "bad hour field '24'"),
        ("cron", "0 0 32 * *", "UTC", "auto", "auto", "schedule", "bad day-of-month field"),
        ("cron", "0 0 * 13 *", "UTC", "auto", "auto", "schedule", "bad month field '13'"),
        ("cron", "0 0 * * 8", "UTC", "auto", "auto", "schedule", "bad day-of-week field '8'"),
        ("cron", "0 0 * * 1#6", "UTC", "auto", "auto", "schedule", "day-of-week field '1#6'"),
        ("cron", "60 0 0 * * *", "UTC", "auto", "auto", "schedule", "bad second field '60'"),
        (
            "cron",
            "0 0 30 2 *",
            "UTC",
            "auto",
            "auto",
            "schedule",
            "day '30' never falls in month '2'",
        ),
        ("cron", "* * * *", "UTC", "auto", "auto", "schedule", "has 4 fields"),
        ("cron", "", "UTC", "auto", "auto", "schedule", "has 0 fields"),
        ("cron", "@fortnightly", "UTC", "auto", "auto", "schedule", "unknown cron macro"),
        ("cron", "@daily", "Mars/Olympus", "auto", "auto", "timezone", "'Mars/Olympus'"),
        ("cron", "@daily", "", "auto", "auto", "timezone", "unknown time zone"),
        ("cron", "@daily", "../etc/passwd", "auto", "auto", "timezone", "unknown time zone"),
        ("cron", "@daily", "UTC", "second", "auto", "dst_repeated", "'second'"),
        ("cron", "@daily", "UTC", "auto", "later", "dst_skipped", "'later'"),
        ("weekly", "@daily", "UTC", "auto", "auto", "schedule", "schedule kind 'weekly'"),
        ("interval", "every 0s", "UTC", "auto", "auto", "schedule", "greater than zero"),
        ("interval", "every 5 parsecs", "UTC", "auto", "auto", "schedule", "bad interval"),
        ("interval", "every", "UTC", "auto", "auto", "schedule", "bad interval"),
        ("once", "at tomorrow", "UTC", "auto", "auto", "schedule", "bad instant 'tomorrow'"),
        ("once", "9999-12-31T23:59:59-14:00", "UTC", "auto", "auto", "schedule", "out of range"),
    ],
)
def test_invalid(
    kind: str, expr: str, zone: str, repeated: str, skipped: str, field: str, words: str
) -> None:
    with pytest.raises(InvalidSchedule) as info:
        parse_schedule(kind, expr, timezone=zone, dst_repeated=repeated, dst_skipped=skipped)
    assert info.value.field == field
    assert words in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("5m", 300), ("1h30m", 5400), ("2d", 172_800), ("45", 45),
     (" 1h 30m ", 5400), ("1d2h3m4s", 93_784), ("10M", 600)],
)  # fmt: skip
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize(
    "text",
    ["", "  ", "0", "0s", "-5m", "5x", "m", "1.5h", "30m1h", "5m5m", "1e3", "٣", "999999999d"],
)
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_duration(text, field="timeout")
    assert info.value.field == "timeout"
    assert not isinstance(info.value, InvalidSchedule)
