"""Durations written the way people write them: ``90s``, ``5m``, ``1h30m``, ``2d``, ``45``."""

from __future__ import annotations

import re
from datetime import timedelta

from cronhive.errors import InvalidInput

# Units in descending order; each may appear at most once, in this order.
_UNITS = {"d": 86_400, "h": 3_600, "m": 60, "s": 1}
_PATTERN = re.compile(r"(?:(\d+)d)?\s*(?:(\d+)h)?\s*(?:(\d+)m)?\s*(?:(\d+)s)?", re.ASCII)
# timedelta tops out near 2.7 million years; refuse long before arithmetic overflows.
_MAX_SECONDS = 100 * 366 * 86_400


def parse_duration(text: str, *, field: str | None = None) -> timedelta:
    """Parses ``90s``, ``5m``, ``1h30m``, ``2d`` or a plain number of seconds.

    Guarantees a positive, whole-second timedelta of at most 100 years. Raises
    `InvalidInput` (with ``field``) on empty, malformed, zero or oversize text.
    """
    raw = text.strip().lower()
    if raw.isascii() and raw.isdigit():
        seconds = int(raw)
    else:
        match = _PATTERN.fullmatch(raw)
        if not raw or match is None:
            raise InvalidInput(
                f"bad duration {text!r}: use e.g. 90s, 5m, 1h30m, 2d or a number of seconds",
                field=field,
            )
        seconds = sum(
            int(value) * factor
            for value, factor in zip(match.groups(), _UNITS.values(), strict=True)
            if value is not None
        )
    if seconds <= 0:
        raise InvalidInput(f"bad duration {text!r}: must be greater than zero", field=field)
    if seconds > _MAX_SECONDS:
        raise InvalidInput(f"bad duration {text!r}: longer than 100 years", field=field)
    return timedelta(seconds=seconds)


_NAMES = (("day", 86_400), ("hour", 3_600), ("minute", 60), ("second", 1))


def describe_period(period: timedelta) -> str:
    """``every 5 minutes``: the largest unit that divides the period exactly."""
    seconds = int(period.total_seconds())
    for name, size in _NAMES:
        if seconds % size == 0:
            count = seconds // size
            return f"every {name}" if count == 1 else f"every {count} {name}s"
    raise AssertionError("unreachable: every whole number of seconds divides by 1")


def describe_offset(offset: timedelta) -> str:
    """``17m23.417s``: a phase, to the millisecond."""
    millis = offset // timedelta(milliseconds=1)
    seconds, millis = divmod(millis, 1000)
    parts = []
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    if seconds or millis or not parts:
        parts.append(f"{seconds}.{millis:03d}s" if millis else f"{seconds}s")
    return "".join(parts)
