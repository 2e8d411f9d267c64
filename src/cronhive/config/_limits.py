"""Resource limits written the way people write them, one vocabulary for the node's
`[limits]` table, a job's `limits = {...}` in an apply file and the CLI's flags:

    memory = "512M"     processes = 64     open_files = 1024
    cpu_time = "10m"    cpu_weight = 50

Sizes and counts are checked for syntax here; their ranges are the API's (api.validate).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from cronhive.errors import InvalidInput
from cronhive.schedule import parse_duration

__all__ = ["LIMIT_KEYS", "parse_limits", "parse_size"]

# The written key -> the field of model.RunLimits (and runner.Limits).
LIMIT_KEYS: Mapping[str, str] = {
    "memory": "memory_bytes",
    "processes": "processes",
    "open_files": "open_files",
    "cpu_time": "cpu_seconds",
    "cpu_weight": "cpu_weight",
}
_SIZE = re.compile(r"(\d+)\s*([KMGT]i?B?|B)?", re.IGNORECASE)
_UNITS = {"": 1, "B": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def parse_size(value: Any, key: str) -> int:
    """Bytes: a whole number, or with a binary unit (`64M`, `512KiB`, `1G`)."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    m = _SIZE.fullmatch(str(value).strip()) if isinstance(value, str) else None
    if m is None:
        raise InvalidInput(
            f"{key}: expected a size in bytes like 65536, 512K, 64M or 1G", field=key
        )
    return int(m.group(1)) * _UNITS[(m.group(2) or "")[:1].upper()]


def _count(value: Any, key: str) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise InvalidInput(f"{key}: expected a whole number >= 1", field=key)
    return value


def _limit(key: str, value: Any, where: str) -> int:
    name = f"{where}.{key}" if where else key
    if key == "memory":
        return parse_size(value, name)
    if key == "cpu_time":
        if isinstance(value, int) and not isinstance(value, bool):
            return _count(value, name)
        if not isinstance(value, str):
            raise InvalidInput(f"{name}: expected a duration like 90s or 10m", field=name)
        return int(parse_duration(value, field=name).total_seconds())
    return _count(value, name)


def parse_limits(table: Any, where: str = "limits", *, clearing: bool = False) -> dict[str, Any]:
    """`{memory = "512M", ...}` -> `{"memory_bytes": 536870912, ...}` (the fields given).

    ``clearing``: a value "none" is kept as None (the field goes back to the node's);
    otherwise it is refused like any other bad value. InvalidInput names the key.
    """
    if not isinstance(table, Mapping):
        raise InvalidInput(
            f'{where}: expected a table like {{ memory = "512M", processes = 64 }}', field=where
        )
    out: dict[str, Any] = {}
    for key, value in table.items():
        if key not in LIMIT_KEYS:
            raise InvalidInput(
                f"{where}.{key}: unknown limit (known: {', '.join(LIMIT_KEYS)})", field=where
            )
        if clearing and isinstance(value, str) and value.strip().lower() == "none":
            out[LIMIT_KEYS[key]] = None
        else:
            out[LIMIT_KEYS[key]] = _limit(key, value, where)
    return out
