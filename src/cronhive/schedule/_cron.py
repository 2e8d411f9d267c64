"""Cron expressions: parsing by cronsim, DST by us.

cronsim does the calendar arithmetic on *naive* wall-clock times (where it has no DST
logic of its own); `_dst` then maps each wall time to real instants under the schedule's
policy. Debian cron's behaviour is one setting of that policy (`resolve_auto`). The search
for the next fire time is `_cursor`'s, counting them `_count`'s.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from cronsim import CronSim, CronSimError

from cronhive.errors import InvalidSchedule
from cronhive.schedule._dst import DstRepeated, DstSkipped, transitions
from cronhive.schedule._spread import expand_h, has_h

# cronsim 2.8 does not take macros; these are the five fields cron(8) documents for them.
MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

_FIELDS = ("second", "minute", "hour", "day-of-month", "month", "day-of-week")
_ALLOWED = {
    "second": "0-59",
    "minute": "0-59",
    "hour": "0-23",
    "day-of-month": "1-31, L or LW",
    "month": "1-12 or JAN-DEC",
    "day-of-week": "0-7 or SUN-SAT, with L (last) and # (nth)",
}
# Any date is found within cronsim's own 50-year horizon; start the walk this early.
_REFERENCE = datetime(2000, 1, 1)
MAX_EXPRESSION = 1000
_BLANKS = re.compile(r"[ \t]+")


@dataclass(frozen=True, kw_only=True, slots=True)
class CronSpec:
    """A validated cron expression: its fields and whether it is a fixed-time job."""

    fields: str  # five fields, or six with a leading seconds field
    fixed_time: bool

    def resolve_auto(
        self, repeated: DstRepeated, skipped: DstSkipped
    ) -> tuple[DstRepeated, DstSkipped]:
        """AUTO as Debian cron: by whether the minute or hour field starts with ``*``.

        Debian cron flags a job whose minute or hour field starts with ``*`` as a wildcard
        job; it runs at every real matching time (a repeated hour twice, a skipped hour
        never). Any other job is fixed-time: once in a repeated hour (the first time) and,
        when its time is skipped, right when the gap ends.
        """
        if repeated is DstRepeated.AUTO:
            repeated = DstRepeated.FIRST if self.fixed_time else DstRepeated.BOTH
        if skipped is DstSkipped.AUTO:
            skipped = DstSkipped.SHIFT if self.fixed_time else DstSkipped.SKIP
        return repeated, skipped

    def describe(self) -> str:
        """cronsim's English, lower-cased to sit inside a sentence; the fields if it fails."""
        try:
            text = CronSim(self.fields, _REFERENCE).explain()
        except Exception:  # explain() is best effort; the expression itself is never wrong
            return self.fields
        return text[:1].lower() + text[1:]


def compile_cron(expression: str, seed: str = "") -> CronSpec:
    """Validates a cron expression (5 fields, 6 with leading seconds, or a macro).

    ``H`` forms are replaced by the values `seed` (the job's name) picks (see `_spread`).
    Raises `InvalidSchedule` (field ``schedule``) naming the bad field and its value.
    """
    text = expression.strip(" \t")
    if len(text) > MAX_EXPRESSION:
        raise InvalidSchedule("cron expression is too long", field="schedule")
    if text.startswith("@"):
        fields = MACROS.get(text.lower())
        if fields is None:
            raise InvalidSchedule(
                f"unknown cron macro {text!r}; known: {', '.join(MACROS)}", field="schedule"
            )
    else:
        _check_separators(text)
        fields = " ".join(_BLANKS.split(text.strip(" \t")))
    parts = fields.split(" ")
    if len(parts) not in (5, 6):
        raise InvalidSchedule(
            f"cron expression {text!r} has {len(parts) if fields else 0} fields; "
            "expected 5 (minute hour day month weekday) or 6 (seconds first)",
            field="schedule",
        )
    if has_h(fields):
        fields = expand_h(fields, seed)
        parts = fields.split(" ")
    try:
        CronSim(fields, _REFERENCE)
    except CronSimError as exc:
        raise InvalidSchedule(_explain_error(text, parts, str(exc)), field="schedule") from exc
    except (ValueError, IndexError, AssertionError) as exc:  # a cronsim edge we did not foresee
        raise InvalidSchedule(f"bad cron expression {text!r}", field="schedule") from exc
    minute, hour = parts[-5], parts[-4]
    return CronSpec(
        fields=fields, fixed_time=not minute.startswith("*") and not hour.startswith("*")
    )


def _check_separators(text: str) -> None:
    """Cron separates fields by spaces and tabs only; any other blank (a no-break space
    pasted from a web page) is refused by name rather than taken as a separator."""
    for char in text:
        if char not in " \t" and (char.isspace() or unicodedata.category(char) in ("Zs", "Cf")):
            name = unicodedata.name(char, "a control character")
            raise InvalidSchedule(
                f"cron expression {text!r} contains U+{ord(char):04X} {name}; fields are "
                "separated by spaces and tabs only",
                field="schedule",
            )


def _impossible_day(parts: list[str]) -> str | None:
    """Why a day-of-month field valid on its own never fires with the month field
    (`0 0 30 2 *`), or None when the field itself is bad."""
    day, month = parts[-3], parts[-2]
    try:
        CronSim(" ".join([*parts[:-2], "*", parts[-1]]), _REFERENCE)
    except (CronSimError, ValueError, IndexError, AssertionError):
        return None
    return (
        f"day {day!r} never falls in month {month!r}: February has at most 29 days; "
        "April, June, September and November 30"
    )


def _explain_error(text: str, parts: list[str], message: str) -> str:
    # cronsim says "Bad minute"; name the value too, so the one error line is enough.
    names = _FIELDS if len(parts) == 6 else _FIELDS[1:]
    if message == "Bad day-of-month" and (why := _impossible_day(parts)) is not None:
        return f"cron expression {text!r} never fires: {why}"
    for index, name in enumerate(names):
        if message == f"Bad {name}":
            return (
                f"bad {name} field {parts[index]!r} in cron expression {text!r} "
                f"(allowed: {_ALLOWED[name]})"
            )
    return f"bad cron expression {text!r}: {message}"


def skipped_walls(
    spec: CronSpec, zone: ZoneInfo, after: datetime, until: datetime
) -> list[tuple[datetime, datetime]]:
    """Wall times of `spec` that do not exist in `zone` (the clocks jumped over them) and
    whose gap ends in (`after`, `until`]: pairs (naive wall time, UTC instant of the gap's
    end). Only meaningful where the policy skips them; the caller decides that.

    Reads only the wall times inside each gap: the work grows with the days of the range
    (one offset sample a day), not with the fire times in it.
    """
    found: list[tuple[datetime, datetime]] = []
    for change in transitions(zone, after.astimezone(UTC), until.astimezone(UTC)):
        if change.after <= change.before:
            continue  # the clocks went back: nothing skipped
        gap_start = (change.at + change.before).replace(tzinfo=None)
        gap_stop = gap_start + (change.after - change.before)
        for wall in CronSim(spec.fields, gap_start - timedelta(seconds=1)):
            if wall >= gap_stop:
                break
            found.append((wall, change.at))
    return found
