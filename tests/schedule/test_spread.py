"""Spreading jobs on purpose: H in cron fields and `offset` for intervals, picked by a
stable hash of the job's name."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from cronhive.errors import InvalidSchedule
from cronhive.schedule import parse_schedule, uses_seed

T0 = datetime(2026, 12, 1, tzinfo=UTC)
NAMES = [f"job-{i}" for i in range(1000)]


def _fields(expr: str, name: str) -> list[str]:
    fields = parse_schedule("cron", expr, seed=name).fields
    assert fields is not None
    return fields.split(" ")


def test_h_picks_a_value_in_each_fields_range() -> None:
    for name in NAMES[:200]:
        minute, hour, day, month, weekday = (int(v) for v in _fields("H H H H H", name))
        assert 0 <= minute <= 59 and 0 <= hour <= 23 and 1 <= day <= 28
        assert 1 <= month <= 12 and 0 <= weekday <= 6
        second = int(_fields("H * * * * *", name)[0])
        assert 0 <= second <= 59


def test_h_ranges_and_steps() -> None:
    for name in NAMES[:200]:
        assert 8 <= int(_fields("0 H(8-17) * * *", name)[1]) <= 17
        start, rest = _fields("H/15 * * * *", name)[0].split("-")
        assert 0 <= int(start) <= 14 and rest == "59/15"
        start, rest = _fields("H(0-29)/10 * * * *", name)[0].split("-")
        assert 0 <= int(start) <= 9 and rest == "29/10"
        # A list may mix H with plain values.
        first, second = _fields("H,30 * * * *", name)[0].split(",")
        assert 0 <= int(first) <= 59 and second == "30"


def test_the_pick_is_the_same_in_every_process() -> None:
    """A stable hash, not Python's per-process one: every node agrees."""
    code = (
        "from cronhive.schedule import parse_schedule;"
        "print(parse_schedule('cron', 'H H * * *', seed='nightly-report').fields);"
        "print(parse_schedule('interval', 'every 1h offset H', seed='nightly-report')"
        ".next_after(__import__('datetime').datetime(2026, 12, 1, tzinfo="
        "__import__('datetime').UTC)))"
    )
    runs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": str(seed), "PATH": "/usr/bin:/bin"},
        ).stdout
        for seed in (1, 2, 3)
    }
    assert len(runs) == 1
    here = parse_schedule("cron", "H H * * *", seed="nightly-report").fields
    assert runs.pop().splitlines()[0] == here


def test_a_fleet_spreads_over_the_hour() -> None:
    minutes = Counter(int(_fields("H * * * *", name)[0]) for name in NAMES)
    assert len(minutes) == 60  # every minute used by 1000 jobs
    assert max(minutes.values()) < 3 * 1000 / 60  # no minute takes a crowd


def test_h_is_not_read_into_day_names() -> None:
    assert not uses_seed("0 3 * * THU")
    assert parse_schedule("cron", "0 3 * * THU").fields == "0 3 * * THU"
    assert uses_seed("H 3 * * THU") and uses_seed("every 1h offset H")
    assert not uses_seed("every 1h") and not uses_seed("every 1h offset 5m")


@pytest.mark.parametrize(
    ("expr", "words"),
    [
        ("H(5-1) * * * *", "within 0-59"),
        ("H(0-60) * * * *", "within 0-59"),
        ("0 H(0-24) * * *", "within 0-23"),
        ("H/0 * * * *", "step must be 1-60"),
        ("H/61 * * * *", "step must be 1-60"),
        ("Hx * * * *", "H is written"),
        ("H(1-2 * * * *", "H is written"),
    ],
)
def test_bad_h_forms_name_the_field(expr: str, words: str) -> None:
    with pytest.raises(InvalidSchedule, match=words) as caught:
        parse_schedule("cron", expr, seed="x")
    assert caught.value.field == "schedule"


def test_interval_offsets() -> None:
    hourly = parse_schedule("interval", "every 1h offset 17m")
    assert hourly.next_after(T0) == T0 + timedelta(minutes=17)
    assert hourly.next_after(T0 + timedelta(minutes=17)) == T0 + timedelta(minutes=77)
    assert hourly.describe() == "every hour, offset 17m"
    aligned = parse_schedule("interval", "every 1h offset 0")
    assert aligned == parse_schedule("interval", "every 1h offset 0")
    assert aligned.next_after(T0) == T0 + timedelta(hours=1)
    for name in NAMES[:100]:
        picked = parse_schedule("interval", "every 1s offset H", seed=name).next_after(T0)
        assert picked is not None and T0 < picked <= T0 + timedelta(seconds=1)


def test_a_fleet_of_per_second_jobs_spreads_over_the_second() -> None:
    phases = sorted(
        parse_schedule("interval", "every 1s offset H", seed=f"probe-{i}").next_after(T0)  # type: ignore[type-var]
        for i in range(100)
    )
    assert len(set(phases)) > 90  # to the millisecond, few share an instant


@pytest.mark.parametrize(
    ("expr", "words"),
    [
        ("every 1h offset 1h", "shorter than the period"),
        ("every 1h offset 2h", "shorter than the period"),
        ("every 1h offset soon", "bad offset"),
        ("every 1h offset", "bad"),
    ],
)
def test_bad_offsets(expr: str, words: str) -> None:
    with pytest.raises(InvalidSchedule, match=words):
        parse_schedule("interval", expr)


@pytest.mark.parametrize(
    ("kind", "expr"),
    [("interval", "every 90s offset 37s"), ("interval", "every 1s offset H"),
     ("cron", "H/7 * * * *"), ("cron", "H H(1-5) * * *")],
)  # fmt: skip
def test_counting_and_listing_agree_with_walking(kind: str, expr: str) -> None:
    schedule = parse_schedule(kind, expr, seed="agree")
    start, end = T0 + timedelta(seconds=13), T0 + timedelta(days=2, seconds=7)
    walked = []
    for when in schedule.iter_after(start):
        if when > end:
            break
        walked.append(when)
    assert schedule.count_between(start, end) == len(walked)
    assert schedule.fires_between(start, end, 50) == walked[:50]
