"""Wall-clock times to real instants, and what a DST policy does with the hard cases.

A wall-clock time in a zone is *normal* (one instant), *repeated* (two instants: the clocks
went back) or *skipped* (no instant: the clocks jumped over it). `instants` turns a wall
time into the instants a schedule fires at, under concrete (already resolved) policies.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import NamedTuple
from zoneinfo import ZoneInfo

DAY = timedelta(days=1)


class DstRepeated(StrEnum):
    """Which occurrence(s) of a wall-clock time that happens twice fire."""

    AUTO = "auto"
    FIRST = "first"
    LAST = "last"
    BOTH = "both"


class DstSkipped(StrEnum):
    """What happens to a wall-clock time that does not exist."""

    AUTO = "auto"
    SHIFT = "shift"
    SKIP = "skip"


def _is_skipped(wall: datetime, zone: ZoneInfo) -> bool:
    aware = wall.replace(tzinfo=zone, fold=0)
    return aware.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != wall


def gap_end(wall: datetime, zone: ZoneInfo) -> datetime:
    """The instant (UTC) at which the gap holding the skipped wall time `wall` ends.

    zoneinfo does not expose its transitions, so bisect the whole seconds between the two
    readings of `wall` (PEP 495: fold=1 reads it with the offset after the jump, the earlier
    instant; fold=0 with the offset before, the later one). Transitions fall on whole seconds.
    """
    after_offset = wall.replace(tzinfo=zone, fold=1).utcoffset()
    low = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)  # before the transition
    high = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)  # after it
    lo_s, hi_s = 0, int((high - low).total_seconds())
    while lo_s < hi_s:
        mid = (lo_s + hi_s) // 2
        if (low + timedelta(seconds=mid)).astimezone(zone).utcoffset() == after_offset:
            hi_s = mid
        else:
            lo_s = mid + 1
    return low + timedelta(seconds=lo_s)


class WallKind(StrEnum):
    NORMAL = "normal"
    REPEATED = "repeated"
    SKIPPED = "skipped"


def readings(wall: datetime, zone: ZoneInfo) -> tuple[WallKind, tuple[datetime, ...]]:
    """Classifies the naive wall time `wall` in `zone` and gives its candidate UTC instants.

    NORMAL: its one instant. REPEATED: both instants, ascending. SKIPPED: the instant the
    gap ends. The first candidate never decreases as `wall` grows (a skipped time maps to
    the gap's end, no earlier than any wall time before the gap and no later than any
    after it), so a search walking wall times in order may stop once it passes the best.
    """
    first = wall.replace(tzinfo=zone, fold=0)
    second = wall.replace(tzinfo=zone, fold=1)
    if first.utcoffset() == second.utcoffset():
        return WallKind.NORMAL, (first.astimezone(UTC),)
    if _is_skipped(wall, zone):
        return WallKind.SKIPPED, (gap_end(wall, zone),)
    early, late = sorted((first.astimezone(UTC), second.astimezone(UTC)))
    return WallKind.REPEATED, (early, late)


def apply_policy(
    kind: WallKind,
    candidates: tuple[datetime, ...],
    repeated: DstRepeated,
    skipped: DstSkipped,
) -> tuple[datetime, ...]:
    """Keeps the candidates a resolved (non-AUTO) policy fires at, ascending."""
    if kind is WallKind.SKIPPED:
        return candidates if skipped is DstSkipped.SHIFT else ()
    if kind is WallKind.REPEATED:
        if repeated is DstRepeated.FIRST:
            return candidates[:1]
        if repeated is DstRepeated.LAST:
            return candidates[1:]
    return candidates


def offset_at(instant: datetime, zone: ZoneInfo) -> timedelta:
    """The UTC offset of `zone` at the aware `instant`."""
    return instant.astimezone(zone).utcoffset() or timedelta()


@dataclass(frozen=True, kw_only=True, slots=True)
class Transition:
    """The clocks of a zone change offset: from `at` (UTC) on, `after` replaces `before`."""

    at: datetime
    before: timedelta
    after: timedelta


def transitions(zone: ZoneInfo, start: datetime, end: datetime) -> list[Transition]:
    """The offset changes of `zone` at instants in (`start`, `end`], ascending.

    zoneinfo does not list them, so the offset is sampled once a day and each change is
    bisected to the second. That finds every change as long as two never come within a
    day: in the tz database the closest are 4 days apart (Africa/Freetown, 1939), and a
    week since 1970.
    """
    found: list[Transition] = []
    t, off = start, offset_at(start, zone)
    while t < end:
        step = min(t + DAY, end)
        new = offset_at(step, zone)
        if new != off:
            found.append(Transition(at=first_change(zone, t, step, off), before=off, after=new))
            off = new
        t = step
    return found


def first_change(zone: ZoneInfo, low: datetime, high: datetime, before: timedelta) -> datetime:
    """The first whole second in (`low`, `high`] at which `zone`'s offset is not `before`
    (it is `before` at `low`, not at `high`)."""
    base = low.replace(microsecond=0)
    lo_s, hi_s = 1, max(1, int((high - base).total_seconds()))
    while lo_s < hi_s:
        mid = (lo_s + hi_s) // 2
        if offset_at(base + timedelta(seconds=mid), zone) != before:
            hi_s = mid
        else:
            lo_s = mid + 1
    return base + timedelta(seconds=lo_s)


class Around(NamedTuple):
    """What a search for the next fire time after an instant needs to know of the zone."""

    offset: timedelta  # at the instant
    low: timedelta  # the smallest and largest offsets of the next `window`
    high: timedelta
    drop: datetime | None  # the clocks go back here, soon enough to repeat walls before now
    once: tuple[datetime, datetime]  # naive walls [a, b) that read once, at `offset`


class OffsetMap:
    """The offsets of a zone over [`start`, `stop`] (aware UTC), as its changes there.

    Found by `transitions`, so under the same assumption. `margin` must exceed the widest
    gap between two offsets (26 hours): instants that far inside are known to read once.
    """

    __slots__ = ("_base", "_changes", "_kept", "_margin", "_valid", "start", "stop")

    def __init__(self, zone: ZoneInfo, start: datetime, stop: datetime, margin: timedelta):
        self.start, self.stop, self._margin = start, stop, margin
        self._base = offset_at(start, zone)
        self._changes = transitions(zone, start, stop)
        # The last answer, and the instants [from, until) it holds for.
        self._kept: Around | None = None
        self._valid = (stop, start)

    def around(self, instant: datetime, window: timedelta) -> Around:
        """`instant` and `instant + window` must lie `margin` inside the map."""
        if self._kept is not None and self._valid[0] <= instant < self._valid[1]:
            return self._kept
        off, prev, following = self._base, None, []
        for change in self._changes:
            if change.at <= instant:
                off, prev = change.after, change
            else:
                following.append(change)
        near = [c.after for c in following if c.at <= instant + window]
        low, high = min([off, *near]), max([off, *near])
        drop = next(
            (c.at for c in following if c.at <= instant + (off - low) and c.after < off), None
        )
        # Walls between the previous change's doubtful walls and the next one's read once.
        start = (self.start + self._margin + off).replace(tzinfo=None)
        if prev is not None:
            start = max(start, (prev.at + max(prev.before, prev.after)).replace(tzinfo=None))
        stop = (self.stop - self._margin + off).replace(tzinfo=None)
        # The answer holds until a change comes within the window, within reach of a
        # drop, or happens.
        until = self.stop
        for c in following[:1]:
            stop = min(stop, (c.at + min(c.before, c.after)).replace(tzinfo=None))
        for c in following:
            for event in (c.at - window, c.at - max(off - c.after, timedelta()), c.at):
                if event > instant:
                    until = min(until, event)
        self._kept = Around(offset=off, low=low, high=high, drop=drop, once=(start, stop))
        self._valid = (instant, until)
        return self._kept
