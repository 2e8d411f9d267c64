"""`next_after` for cron in microseconds: one cronsim iterator per schedule, reused.

Building a `CronSim` for every question and walking it from the smallest offset of the
next two days cost tens of µs, and up to 28 ms a question in the two days before a
fall-back (an hour of wall times too early). The cursor keeps one iterator and the wall
times it produced with their fire instants, walks forward as the questions move forward,
and starts over only for a question before what it remembers or far beyond it. Any order
of questions gets the answer a fresh search would give (tests/schedule check that).
"""

from __future__ import annotations

from bisect import bisect_right
from datetime import UTC, datetime, timedelta
from typing import NamedTuple
from zoneinfo import ZoneInfo

from cronsim import CronSim

from cronhive.schedule._dst import (
    DAY,
    Around,
    DstRepeated,
    DstSkipped,
    OffsetMap,
    apply_policy,
    offset_at,
    readings,
)

# Wall times remembered at most; the older half goes when full (a caller a little behind
# the newest question still finds them).
_MEMORY = 64
# Wall times walked towards a question beyond the newest one before starting over there
# (a new iterator costs about as much as walking this many).
_WALK = 16
_WINDOW = 2 * DAY  # the offsets of this much time after a question bound the search
# The zone's offsets are mapped from _MARGIN before a question to _SPAN after it, and
# mapped again when a question's window leaves that by less than _MARGIN.
_MARGIN = 2 * DAY
_SPAN = 10 * DAY
_TICK = timedelta(microseconds=1)


class _Wall(NamedTuple):
    wall: datetime  # naive, whole seconds
    first: datetime  # the earliest candidate instant (non-decreasing with `wall`)
    fires: tuple[datetime, ...]  # what the policy fires at, ascending, UTC


class CronCursor:
    """Answers `next_after` for one cron expression, zone and resolved DST policy.

    Holds every matching wall time in (`_lo`, `_hi`], in order; `_sim` yields the ones
    after `_hi`. Not thread-safe (nor meant to be: one event loop calls it).
    """

    def __init__(
        self, fields: str, zone: ZoneInfo, repeated: DstRepeated, skipped: DstSkipped
    ) -> None:
        self._fields = fields
        self._zone = zone
        self._repeated = repeated
        self._skipped = skipped
        self._sim: CronSim | None = None
        self._done = False  # `_sim` found nothing more (cronsim's 50-year horizon)
        self._lo = self._hi = datetime.min
        self._keys: list[datetime] = []  # the walls of `_walls`, for bisect
        self._walls: list[_Wall] = []
        self._map: OffsetMap | None = None
        # Walls in [_once_from, _once_to) read once, as the instant wall - _once_offset.
        self._once_from, self._once_to = datetime.max, datetime.min
        self._once_offset = timedelta()

    def next_after(self, after: datetime) -> datetime | None:
        """The first fire instant strictly after the aware UTC `after`, or None.

        Walls before ``local(after)`` fire later only in a repeated hour's second pass,
        which is at or after the fall-back instant; so search from ``local(after)`` and
        look at the repeated walls only when nothing fires before the clocks go back.
        Raises `OverflowError` near year 9999 (the caller maps it to None).
        """
        around = self._around(after)
        self._once_from, self._once_to = around.once
        self._once_offset = around.offset
        local = (after + around.offset).replace(tzinfo=None)
        best = self._search(after, local, around.high)
        drop = around.drop
        # The clocks go back soon enough that walls before `local` repeat after it; the
        # repeats come at or after `drop`, so they matter only if nothing fires before.
        if (
            drop is not None
            and self._repeated is not DstRepeated.FIRST
            and (best is None or best > drop)
        ):
            second = self._second_pass(after, local, drop)
            if second is not None and (best is None or second < best):
                best = second
        return best

    def fires_between(self, after: datetime, end: datetime, limit: int) -> list[datetime]:
        """`next_after` repeated from `after` while the answer is at most `end`, at most
        `limit` times. A wall that reads once fires right after the one before it, so a
        run of them is read straight off the iterator, without a search each."""
        found: list[datetime] = []
        t = after
        while len(found) < limit:
            nxt = self.next_after(t)
            if nxt is None or nxt > end:
                break
            t = nxt
            found.append(t)
            wall = (t + self._once_offset).replace(tzinfo=None)
            while len(found) < limit and self._once_from <= wall < self._once_to:
                entry = self._wall_after(wall)
                if entry is None or not entry.wall < self._once_to or entry.fires[0] > end:
                    break
                t, wall = entry.fires[0], entry.wall
                found.append(t)
        return found

    def _around(self, after: datetime) -> Around:
        m = self._map
        if m is None or not m.start + _MARGIN <= after <= m.stop - _MARGIN - _WINDOW:
            m = self._map = OffsetMap(self._zone, after - _MARGIN, after + _SPAN, _MARGIN)
        return m.around(after, _WINDOW)

    def _search(self, after: datetime, local: datetime, high: timedelta) -> datetime | None:
        # Stop once no later wall can beat `best`: first candidates never decrease with the
        # wall, and a wall w fires no earlier than w - high (the largest offset of the
        # window). The second bound ends the search in a repeated hour's second pass,
        # where the first candidates lie in the past.
        best: datetime | None = None
        limit = (after + _WINDOW).replace(tzinfo=None)
        bound = datetime.max
        q = local
        while (entry := self._wall_after(q)) is not None:
            if best is not None and (entry.first >= best or entry.wall - high >= bound):
                break
            q = entry.wall
            if not entry.fires:
                # Skipped and dropped (dst_skipped=skip): so is the rest of the gap, so go
                # on where it ends rather than read each wall time in it.
                q = max(q, entry.first.astimezone(self._zone).replace(tzinfo=None) - _TICK)
            for instant in entry.fires:
                if instant > after:
                    if best is None or instant < best:
                        best = instant
                        naive = best.replace(tzinfo=None)
                        bound = naive if naive <= limit else datetime.max
                    break
        return best

    def _second_pass(self, after: datetime, local: datetime, drop: datetime) -> datetime | None:
        # Walls in [drop + new offset, local] are repeated and only their second reading
        # (drop or later, ascending with the wall) can come after `after`: the first one
        # that fires there is the earliest. Rare, so a throwaway iterator does it.
        start = (drop + offset_at(drop, self._zone)).replace(tzinfo=None)
        for wall in CronSim(self._fields, start - timedelta(seconds=1)):
            if wall > local:
                return None
            for instant in self._entry(wall).fires:
                if instant > after:
                    return instant
        return None

    def _wall_after(self, q: datetime) -> _Wall | None:
        """The first matching wall time after the naive `q`, from memory if it is there."""
        if self._sim is None or q < self._lo:
            self._restart(q)
        keys = self._keys
        i = bisect_right(keys, q)
        if i < len(keys):
            return self._walls[i]
        # q is at or past the newest wall: walk a little towards it, else start over there.
        for _ in range(_WALK):
            wall = self._next_wall()
            if wall is None:
                if q <= self._hi:
                    return None
                self._restart(q)  # cronsim's horizon counts from where it starts
                continue
            if wall > q:
                return self._keep(wall)
            self._forget(wall)
        self._restart(q)
        wall = self._next_wall()
        return None if wall is None else self._keep(wall)

    def _restart(self, q: datetime) -> None:
        self._sim = CronSim(self._fields, q)
        self._done = False
        self._forget(q)

    def _forget(self, wall: datetime) -> None:
        # Nothing at or before `wall` is needed: the memory starts after it.
        self._keys.clear()
        self._walls.clear()
        self._lo = self._hi = wall

    def _keep(self, wall: datetime) -> _Wall:
        entry = self._entry(wall)
        if len(self._keys) >= _MEMORY:  # a search only moves on: the oldest half goes
            cut = _MEMORY // 2
            self._lo = self._keys[cut - 1]
            del self._keys[:cut], self._walls[:cut]
        self._keys.append(wall)
        self._walls.append(entry)
        self._hi = wall
        return entry

    def _next_wall(self) -> datetime | None:
        if self._done or self._sim is None:
            return None
        try:
            return next(self._sim)
        except StopIteration:
            self._done = True
            return None
        except OverflowError:
            self._sim = None  # its position is unknown now; the next question rebuilds
            raise

    def _entry(self, wall: datetime) -> _Wall:
        if self._once_from <= wall < self._once_to:  # no need to ask the zone
            instant = (wall - self._once_offset).replace(tzinfo=UTC)
            return _Wall(wall, instant, (instant,))
        try:
            kind, candidates = readings(wall, self._zone)
        except OverflowError:
            self._sim = None
            raise
        fires = apply_policy(kind, candidates, self._repeated, self._skipped)
        return _Wall(wall, candidates[0], fires)
