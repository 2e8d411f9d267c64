"""Wall-clock times to real instants, and what a DST policy does with the hard cases.

A wall-clock time in a zone is *normal* (one instant), *repeated* (two instants: the clocks
went back) or *skipped* (no instant: the clocks jumped over it). `instants` turns a wall
time into the instants a schedule fires at, under concrete (already resolved) policies.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo


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
