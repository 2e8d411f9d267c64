"""When jobs fire: cron, interval and once schedules, each in an IANA zone with a DST policy.

    parse_schedule(kind, expression, timezone=..., dst_repeated=..., dst_skipped=...)
        -> Schedule        validated; raises InvalidSchedule naming the bad field
    Schedule.next_after(instant) -> datetime | None    strictly after; aware UTC out
    Schedule.iter_after(instant) -> Iterator[datetime]
    Schedule.count_between(start, end) -> int          fire times in (start, end], no walk
    Schedule.fires_between(start, end, limit) -> list[datetime]   the first `limit` of them
    Schedule.describe() -> str
    Schedule.fields -> str | None                      cron fields with H worked out
    uses_seed(expression) -> bool                      whether the job's name matters (H)
    parse_duration(text) -> timedelta                  raises InvalidInput

Cron parsing and calendar arithmetic are cronsim's; the DST policy (see docs/schedules.md)
is ours and defaults to Debian cron's behaviour.
"""

from __future__ import annotations

from cronhive.schedule._cron import MACROS
from cronhive.schedule._dst import DstRepeated, DstSkipped
from cronhive.schedule._duration import parse_duration
from cronhive.schedule._model import Schedule, ScheduleKind, kind_of, parse_schedule
from cronhive.schedule._spread import uses_seed

__all__ = [
    "MACROS",
    "DstRepeated",
    "DstSkipped",
    "Schedule",
    "ScheduleKind",
    "kind_of",
    "parse_duration",
    "parse_schedule",
    "uses_seed",
]
