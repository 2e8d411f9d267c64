"""Spreading a fleet of jobs on purpose: Jenkins-style ``H`` in cron fields and a phase
for intervals, both picked by a stable hash of the job's name.

A hundred jobs written ``0 * * * *`` all fire in the same instant; written ``H * * * *``
each fires at a minute of its own, the same minute on every node and after every
restart, because the value comes from the job's name alone (SHA-256, not Python's
per-process `hash`). Forms, in any field, alone or in a comma list:

    H          a value in the field's range (day of month: 1-28, so every month has it)
    H(a-b)     a value in a..b
    H/n        every n, starting at a value in 0..n-1 (1..n for day of month and month)
    H(a-b)/n   every n within a..b, starting at a value in a..a+n-1
"""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

from cronhive.errors import InvalidSchedule

# Per field (seconds first when there are six): the range a bare H picks from...
_RANGES = {
    "second": (0, 59),
    "minute": (0, 59),
    "hour": (0, 23),
    "day-of-month": (1, 28),
    "month": (1, 12),
    "day-of-week": (0, 6),
}
# ... and the field's own range, which H(a-b) must lie in.
_LIMITS = {**_RANGES, "day-of-month": (1, 31)}
_FIELDS = tuple(_RANGES)
_H = re.compile(r"H(?:\((\d+)-(\d+)\))?(?:/(\d+))?", re.ASCII)


def stable_hash(seed: str, salt: str) -> int:
    """A number from `seed` that every node and every release computes alike."""
    digest = hashlib.sha256(f"{seed}\0{salt}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def uses_seed(expression: str) -> bool:
    """Whether the job's name changes what `expression` means (H, or offset H)."""
    text = expression.strip()
    if text.lower().startswith("every"):
        return text.lower().replace(" ", "").endswith("offseth")
    return has_h(" ".join(text.split()))


def has_h(fields: str) -> bool:
    # An item starting with H (not THU, which only contains one).
    return any(item.startswith("H") for part in fields.split(" ") for item in part.split(","))


def expand_h(fields: str, seed: str) -> str:
    """`fields` (5 or 6, space-separated) with every ``H`` form replaced by plain cron.

    Raises `InvalidSchedule` for a malformed form or a range outside the field's.
    """
    parts = fields.split(" ")
    names = _FIELDS if len(parts) == 6 else _FIELDS[1:]
    return " ".join(
        _expand_field(part, name, seed) for part, name in zip(parts, names, strict=True)
    )


def _expand_field(part: str, name: str, seed: str) -> str:
    return ",".join(
        _expand_item(item, name, seed) if item.startswith("H") else item for item in part.split(",")
    )


def _expand_item(item: str, name: str, seed: str) -> str:
    match = _H.fullmatch(item)
    if match is None:
        raise InvalidSchedule(
            f"bad {name} field {item!r}: H is written H, H(a-b), H/n or H(a-b)/n",
            field="schedule",
        )
    low, high = _RANGES[name]
    if match.group(1) is not None:
        a, b = int(match.group(1)), int(match.group(2))
        first, last = _LIMITS[name]
        if not first <= a <= b <= last:
            raise InvalidSchedule(
                f"bad {name} field {item!r}: the range must lie within {first}-{last}",
                field="schedule",
            )
        low, high = a, b
    value = stable_hash(seed, name)
    if match.group(3) is None:
        return str(low + value % (high - low + 1))
    step = int(match.group(3))
    if not 1 <= step <= high - low + 1:
        raise InvalidSchedule(
            f"bad {name} field {item!r}: the step must be 1-{high - low + 1}", field="schedule"
        )
    return f"{low + value % step}-{high}/{step}"


def hashed_offset(seed: str, period: timedelta) -> timedelta:
    """A phase in [0, period) from `seed`, to the millisecond."""
    millis = period // timedelta(milliseconds=1)
    return timedelta(milliseconds=stable_hash(seed, "interval") % millis)
