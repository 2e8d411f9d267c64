"""The `Schedule` model: one of three kinds, an IANA zone, and an explicit DST policy."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronhive.errors import InvalidInput, InvalidSchedule
from cronhive.schedule._count import CronCounter, count_cron
from cronhive.schedule._cron import CronSpec, compile_cron, skipped_walls
from cronhive.schedule._cursor import CronCursor
from cronhive.schedule._dst import DstRepeated, DstSkipped, apply_policy, readings
from cronhive.schedule._duration import describe_offset, describe_period, parse_duration
from cronhive.schedule._spread import hashed_offset

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SAFE_END = datetime(9999, 12, 1, tzinfo=UTC)
_E = TypeVar("_E", bound=StrEnum)


class ScheduleKind(StrEnum):
    CRON = "cron"
    INTERVAL = "interval"
    ONCE = "once"


def kind_of(expression: str) -> ScheduleKind:
    """Guesses the kind from the text: ``every ...`` interval, ``at ...`` once, else cron."""
    head = expression.strip().lower()
    if head.startswith("every ") or head == "every":
        return ScheduleKind.INTERVAL
    if head.startswith("at ") or head == "at":
        return ScheduleKind.ONCE
    return ScheduleKind.CRON


@dataclass(frozen=True, kw_only=True, slots=True)
class _Compiled:
    """What `next_after` needs, worked out once per Schedule."""

    zone: ZoneInfo
    cron: CronSpec | None = None
    cursor: CronCursor | None = None  # mutable: the reused cronsim iterator
    counter: CronCounter | None = None
    repeated: DstRepeated = DstRepeated.AUTO  # resolved for cron
    skipped: DstSkipped = DstSkipped.AUTO
    period: timedelta | None = None
    base: datetime = EPOCH  # interval fires are base + k * period (base: epoch + offset)
    once: tuple[datetime, ...] = ()  # UTC instants, ascending


@dataclass(frozen=True, kw_only=True)
class Schedule:
    """When a job fires. Built from the five stored strings; validated on construction.

    `seed` (the job's name) picks the values of ``H`` in cron fields and of ``offset H``
    in intervals (see `_spread`); it matters only to expressions that use them.
    Raises `InvalidSchedule` whose ``field`` is ``schedule``, ``timezone``,
    ``dst_repeated`` or ``dst_skipped``. Equal schedules compare and hash equal.
    """

    kind: ScheduleKind
    expression: str
    timezone: str = "UTC"
    dst_repeated: DstRepeated = DstRepeated.AUTO
    dst_skipped: DstSkipped = DstSkipped.AUTO
    seed: str = ""
    _compiled: _Compiled = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        # Accept the stored strings; keep the enums so callers compare like with like.
        kind = _enum(ScheduleKind, self.kind, "schedule", "schedule kind")
        repeated = _enum(DstRepeated, self.dst_repeated, "dst_repeated", "dst_repeated policy")
        skipped = _enum(DstSkipped, self.dst_skipped, "dst_skipped", "dst_skipped policy")
        if not isinstance(self.expression, str):
            raise InvalidSchedule("schedule expression must be text", field="schedule")
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "dst_repeated", repeated)
        object.__setattr__(self, "dst_skipped", skipped)
        zone = _zone(self.timezone)
        if not isinstance(self.seed, str):
            raise InvalidSchedule("schedule seed must be text", field="schedule")
        object.__setattr__(
            self,
            "_compiled",
            _compile(kind, self.expression, zone, repeated, skipped, self.seed),
        )

    def next_after(self, instant: datetime) -> datetime | None:
        """The first fire time strictly after `instant` (aware), as an aware UTC datetime.

        None when the schedule is exhausted (a `once` in the past) or the next fire would
        fall beyond year 9999. Raises `ValueError` on a naive `instant`.
        """
        if _naive(instant):
            raise ValueError("next_after needs an aware datetime")
        c = self._compiled
        after = instant.astimezone(UTC)
        try:
            if c.cursor is not None:
                return c.cursor.next_after(after)
            if c.period is not None:
                # Aligned to the epoch (plus the offset): stateless, the same on every node.
                return c.base + ((after - c.base) // c.period + 1) * c.period
        except OverflowError:
            return None
        return next((t for t in c.once if t > after), None)

    def iter_after(self, instant: datetime) -> Iterator[datetime]:
        """Fire times strictly after `instant`, strictly increasing, aware UTC."""
        current: datetime | None = instant
        while current is not None and (current := self.next_after(current)) is not None:
            yield current

    def fires_between(self, start: datetime, end: datetime, limit: int) -> list[datetime]:
        """The first `limit` fire times t with `start` < t <= `end` (aware), ascending,
        aware UTC: what `iter_after(start)` yields up to `end`, cut at `limit`.

        Cheaper per fire time than iterating: arithmetic for interval and once; for cron,
        fire times that follow each other come straight off the reused iterator.
        """
        if _naive(start) or _naive(end):
            raise ValueError("fires_between needs aware datetimes")
        c = self._compiled
        start, end = start.astimezone(UTC), end.astimezone(UTC)
        if limit <= 0 or end <= start:
            return []
        try:
            if c.cursor is not None:
                return c.cursor.fires_between(start, end, limit)
        except OverflowError:  # near year 9999: what next_after gives, one by one
            return list(itertools.islice(itertools.takewhile(
                lambda t: t <= end, self.iter_after(start)), limit))  # fmt: skip
        if c.period is not None:
            first = (start - c.base) // c.period + 1
            last = min((end - c.base) // c.period, first + limit - 1)
            return [c.base + k * c.period for k in range(first, last + 1)]
        return [t for t in c.once if start < t <= end][:limit]

    def count_between(self, start: datetime, end: datetime) -> int:
        """How many fire times t have `start` < t <= `end` (both aware): exactly the number
        `iter_after(start)` yields up to `end`, 0 when `end <= start`.

        The work never grows with the number of fire times: O(1) for interval and once;
        for cron about a µs per day of the range (one offset sample and one day match a
        day: ~5 ms for 10 years). Cron fire times after 9999-12-01 are not counted.
        Raises `ValueError` on a naive instant.
        """
        if _naive(start) or _naive(end):
            raise ValueError("count_between needs aware datetimes")
        c = self._compiled
        start, end = start.astimezone(UTC), end.astimezone(UTC)
        if end <= start:
            return 0
        if c.counter is not None:
            # Dates near year 9999 overflow; nothing real is scheduled that late.
            end = min(end, _SAFE_END)
            return count_cron(c.counter, c.zone, c.repeated, c.skipped, start, end)
        if c.period is not None:
            # Fires are the multiples of the period since the epoch (plus the offset).
            return (end - c.base) // c.period - (start - c.base) // c.period
        return sum(start < t <= end for t in c.once)

    def dst_skips(self, after: datetime, until: datetime) -> list[tuple[datetime, datetime]]:
        """Fire times of a fixed-time cron job lost to a DST gap under `dst_skipped=skip`,
        whose gap ends in (`after`, `until`]: pairs (naive wall time, UTC end of the gap).

        Empty for every other schedule: a wildcard-hour job still fires on every real hour,
        so nothing of it is lost, and `shift` moves the time rather than dropping it. The
        engine records each of these as a `skipped` execution so no slot vanishes silently.
        """
        c = self._compiled
        if c.cron is None or not c.cron.fixed_time or c.skipped is not DstSkipped.SKIP:
            return []
        return skipped_walls(c.cron, c.zone, after, until)

    @property
    def fields(self) -> str | None:
        """A cron schedule's fields as it runs them (``H`` replaced); None for others."""
        cron = self._compiled.cron
        return None if cron is None else cron.fields

    def describe(self) -> str:
        """In words: ``at 03:00 every day (Europe/Berlin)``, ``every 5 minutes``, ..."""
        c = self._compiled
        if c.cron is not None:
            return f"{c.cron.describe()} ({self.timezone})"
        if c.period is not None:
            if c.base == EPOCH:
                return describe_period(c.period)
            return f"{describe_period(c.period)}, offset {describe_offset(c.base - EPOCH)}"
        return "once at " + " and ".join(t.astimezone(c.zone).isoformat() for t in c.once)


def parse_schedule(
    kind: str,
    expression: str,
    *,
    timezone: str = "UTC",
    dst_repeated: str = "auto",
    dst_skipped: str = "auto",
    seed: str = "",
) -> Schedule:
    """Builds a `Schedule` from stored or user strings, validating every part. `seed` is
    the job's name, for ``H`` (see `Schedule`).

    Raises `InvalidSchedule(message, field=...)`, field in ``schedule``, ``timezone``,
    ``dst_repeated``, ``dst_skipped``; never anything else for any string input.
    """
    return Schedule(
        kind=kind,  # type: ignore[arg-type]  # __post_init__ converts and validates
        expression=expression,
        timezone=timezone,
        dst_repeated=dst_repeated,  # type: ignore[arg-type]
        dst_skipped=dst_skipped,  # type: ignore[arg-type]
        seed=seed,
    )


def _naive(instant: datetime) -> bool:
    return instant.tzinfo is None or instant.utcoffset() is None


def _enum(cls: type[_E], value: object, field_name: str, label: str) -> _E:
    try:
        return cls(value)  # type: ignore[arg-type]  # any stored value is checked here
    except ValueError:
        choices = ", ".join(member.value for member in cls)
        raise InvalidSchedule(
            f"unknown {label} {value!r}; use one of: {choices}", field=field_name
        ) from None


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError, TypeError):
        raise InvalidSchedule(f"unknown time zone {name!r}", field="timezone") from None


def _compile(
    kind: ScheduleKind,
    expression: str,
    zone: ZoneInfo,
    repeated: DstRepeated,
    skipped: DstSkipped,
    seed: str,
) -> _Compiled:
    if kind is ScheduleKind.CRON:
        spec = compile_cron(expression, seed)
        repeated, skipped = spec.resolve_auto(repeated, skipped)
        return _Compiled(
            zone=zone,
            cron=spec,
            cursor=CronCursor(spec.fields, zone, repeated, skipped),
            counter=CronCounter(spec.fields),
            repeated=repeated,
            skipped=skipped,
        )
    text = expression.strip()
    if kind is ScheduleKind.INTERVAL:
        return _interval(text, zone, seed)
    body = text[2:].strip() if text.lower().startswith("at") else text
    return _Compiled(zone=zone, once=_once(body, zone, repeated, skipped))


def _interval(text: str, zone: ZoneInfo, seed: str) -> _Compiled:
    """``every 1h``, ``every 1h offset 17m`` or ``every 1h offset H``."""
    body = text[5:] if text.lower().startswith("every") else text
    every, _, offset_text = body.lower().partition(" offset ")
    try:
        period = parse_duration(every, field="schedule")
    except InvalidInput as exc:
        raise InvalidSchedule(f"bad interval {text!r}: {exc}", field="schedule") from None
    offset = timedelta(0)
    written = offset_text.strip()
    if written == "h":
        offset = hashed_offset(seed, period)
    elif written not in ("", "0"):
        try:
            offset = parse_duration(written, field="schedule")
        except InvalidInput as exc:
            raise InvalidSchedule(f"bad offset in {text!r}: {exc}", field="schedule") from None
        if offset >= period:
            raise InvalidSchedule(
                f"bad offset in {text!r}: it must be shorter than the period", field="schedule"
            )
    elif " offset" in body.lower() and not written:
        raise InvalidSchedule(f"bad interval {text!r}: offset needs a value", field="schedule")
    return _Compiled(zone=zone, period=period, base=EPOCH + offset)


def _once(
    text: str, zone: ZoneInfo, repeated: DstRepeated, skipped: DstSkipped
) -> tuple[datetime, ...]:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidSchedule(
            f"bad instant {text!r}: use ISO 8601, e.g. 2026-12-01T09:00:00+01:00",
            field="schedule",
        ) from None
    if when.tzinfo is not None:
        try:
            return (when.astimezone(UTC),)
        except OverflowError:  # 9999-12-31T23:59:59-14:00 is in the year 10000 in UTC
            raise InvalidSchedule(f"bad instant {text!r}: out of range", field="schedule") from None
    # A naive instant is a wall time in the zone: DST policy as for a fixed-time cron job.
    if repeated is DstRepeated.AUTO:
        repeated = DstRepeated.FIRST
    if skipped is DstSkipped.AUTO:
        skipped = DstSkipped.SHIFT
    try:
        found = apply_policy(*readings(when, zone), repeated, skipped)
    except OverflowError:
        found = ()
    if not found:
        raise InvalidSchedule(
            f"{text} does not exist in {zone.key} (skipped by DST) and dst_skipped is skip",
            field="schedule",
        )
    return found
