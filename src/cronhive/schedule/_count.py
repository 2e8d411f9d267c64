"""How many times a cron job fires in a range, by arithmetic instead of a walk.

Between two offset changes real time and the wall clock move together, so the fire times
in such a stretch are the matching wall times of the same stretch on the wall clock;
those are counted a day at a time (the times of day that match are the same every day).
The DST policy then only removes second or first passes of repeated wall times and adds
one fire for a gap that `shift` moves to its end. The cost grows with the number of days
in the range (a few µs for each), never with the number of fire times.
"""

from __future__ import annotations

from bisect import bisect_left
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from cronsim import CronSim

from cronhive.schedule._dst import DAY, DstRepeated, DstSkipped, offset_at, transitions

_TICK = timedelta(microseconds=1)
_SECOND = timedelta(seconds=1)
# Offset changes up to this far outside the range still decide which passes count.
_REACH = 2 * DAY
# Wall times are counted up to here; beyond, timedelta arithmetic would overflow.
_LAST = datetime(9999, 12, 29)


class CronCounter:
    """Counts the matching wall times of one cron expression in a wall-clock range."""

    def __init__(self, fields: str) -> None:
        sim = CronSim(fields, datetime(2000, 1, 1))
        self._sim = sim
        self._hours = sorted(sim.hours)
        self._minutes = sorted(sim.minutes)
        self._seconds = sorted(sim.seconds)
        self._per_day = len(self._hours) * len(self._minutes) * len(self._seconds)
        weekdays = sim.weekdays
        all_dom = set(range(1, 32)) <= sim.days
        all_dow = all(d in weekdays or d % 7 in weekdays for d in range(1, 8))
        days = (all_dom and all_dow) if sim.day_and else (all_dom or all_dow)
        self._every_day = days and sim.months == set(range(1, 13))

    def walls(self, low: datetime, high: datetime) -> int:
        """Matching naive wall times w with `low` < w <= `high`."""
        start = low.replace(microsecond=0) + _SECOND  # the first whole second after low
        stop = min(high, _LAST).replace(microsecond=0) + _SECOND
        if start >= stop:
            return 0
        first, last = start.date(), stop.date()
        if first == last:
            return self._day(first) * (self._before(stop) - self._before(start))
        count = self._day(first) * (self._per_day - self._before(start))
        count += self._per_day * self._days(first + DAY, last)
        return count + self._day(last) * self._before(stop)

    def matches(self, wall: datetime) -> bool:
        return self.walls(wall - _TICK, wall) == 1

    def _before(self, wall: datetime) -> int:
        # Matching times of day earlier than wall's, on a matching day.
        hours, minutes, seconds = self._hours, self._minutes, self._seconds
        count = bisect_left(hours, wall.hour) * len(minutes) * len(seconds)
        if wall.hour in self._sim.hours:
            count += bisect_left(minutes, wall.minute) * len(seconds)
            if wall.minute in self._sim.minutes:
                count += bisect_left(seconds, wall.second)
        return count

    def _day(self, day: date) -> int:
        return int(day.month in self._sim.months and self._sim.match_day(day))

    def _days(self, first: date, stop: date) -> int:
        # Matching days in [first, stop), skipping whole months that do not match.
        if first >= stop:
            return 0
        if self._every_day:
            return (stop - first).days
        count, day, months = 0, first, self._sim.months
        while day < stop:
            if day.month not in months:
                day = (day.replace(day=1) + 32 * DAY).replace(day=1)
                continue
            count += self._sim.match_day(day)
            day += DAY
        return count


def count_cron(
    counter: CronCounter,
    zone: ZoneInfo,
    repeated: DstRepeated,
    skipped: DstSkipped,
    start: datetime,
    end: datetime,
) -> int:
    """The fire times t with `start` < t <= `end` (aware) under a resolved DST policy:
    exactly what iterating `next_after` from `start` would count."""
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    if end <= start:
        return 0
    changes = transitions(zone, start - _REACH, min(end + _REACH, _LAST.replace(tzinfo=UTC)))
    count, low, offset = 0, start, offset_at(start, zone)
    for change in changes:
        if start < change.at <= end:  # one stretch of constant offset ends here
            high = change.at - _TICK
            count += counter.walls(_wall(low, offset), _wall(high, offset))
            low, offset = high, change.after
    count += counter.walls(_wall(low, offset), _wall(end, offset))
    for change in changes:
        count += _policy(counter, repeated, skipped, start, end, change.at, change.before,
                         change.after)  # fmt: skip
    return count


def _policy(
    counter: CronCounter,
    repeated: DstRepeated,
    skipped: DstSkipped,
    start: datetime,
    end: datetime,
    at: datetime,
    before: timedelta,
    after: timedelta,
) -> int:
    # What the policy changes around one offset change: the stretches above counted
    # every real reading once and nothing in a gap.
    edge = _wall(at, before)  # the wall clock reads this just before the change
    if after < before:  # wall times in [edge - (before - after), edge) happen twice
        repeat_low = edge - (before - after) - _TICK
        repeat_high = edge - _TICK
        if repeated is DstRepeated.FIRST:  # drop second readings (offset `after`)
            low, high = _wall(start, after), _wall(end, after)
        elif repeated is DstRepeated.LAST:  # drop first readings (offset `before`)
            low, high = _wall(start, before), _wall(end, before)
        else:
            return 0
        return -counter.walls(max(low, repeat_low), min(high, repeat_high))
    if skipped is DstSkipped.SHIFT and start < at <= end:
        # Wall times in [edge, edge + gap) fire once, at the change, unless the first real
        # wall time after the gap fires there anyway.
        gap_stop = edge + (after - before)
        if counter.walls(edge - _TICK, gap_stop - _TICK) and not counter.matches(gap_stop):
            return 1
    return 0


def _wall(instant: datetime, offset: timedelta) -> datetime:
    return (instant + offset).replace(tzinfo=None)
