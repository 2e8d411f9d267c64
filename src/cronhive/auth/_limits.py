"""Per-owner limits as the policy file writes them (``[limits]``, ``[users.x.limits]``,
``[groups.y.limits]``), parsed and checked; `auth.quotas` enforces them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from cronhive.errors import InvalidInput
from cronhive.schedule import parse_duration

__all__ = ["DEFAULT_LIMITS", "LIMIT_KEYS", "UNLIMITED", "Limits", "parse_limits"]

COUNT_KEYS = ("concurrent_runs", "queued_runs", "jobs")
LIMIT_KEYS = (*COUNT_KEYS, "shortest_interval")
_MAX_COUNT = 1_000_000_000
_NO_LIMIT = "unlimited"


@dataclass(frozen=True, kw_only=True)
class Limits:
    """What one owner may hold; None is no limit. The defaults are `DEFAULT_LIMITS`."""

    concurrent_runs: int | None = 256  # running at once, cluster-wide (the claim skips)
    queued_runs: int | None = 500  # queued at once (a new run or trigger is refused)
    jobs: int | None = 500  # jobs owned (a new job is refused)
    shortest_interval: timedelta | None = timedelta(minutes=1)  # between two fire times

    def merged(self, overrides: Mapping[str, Any]) -> Limits:
        """These limits with `overrides` (from `parse_limits`) replacing their keys."""
        return replace(self, **overrides)


DEFAULT_LIMITS = Limits()
UNLIMITED = Limits(concurrent_runs=None, queued_runs=None, jobs=None, shortest_interval=None)


def _count(value: Any, key: str) -> int | None:
    if value == _NO_LIMIT:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= _MAX_COUNT:
        raise InvalidInput(
            f"{key}: must be a whole number from 1 to {_MAX_COUNT} or {_NO_LIMIT!r}, not {value!r}",
            field=key,
        )
    return value


def _interval(value: Any, key: str) -> timedelta | None:
    if value == _NO_LIMIT:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise InvalidInput(
            f"{key}: must be a duration such as '1m' or {_NO_LIMIT!r}, not {value!r}", field=key
        )
    try:
        return parse_duration(value, field=key)
    except InvalidInput as exc:
        raise InvalidInput(f"{key}: {exc}", field=key) from None


def parse_limits(table: Any, key: str, extra: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The limits a policy table sets (only the keys it names), checked; `extra` keys
    are allowed and left for the caller. Raises InvalidInput naming the bad key."""
    if not isinstance(table, dict):
        raise InvalidInput(f"{key}: must be a table", field=key)
    allowed = frozenset(LIMIT_KEYS) | extra
    for k in table:
        if k not in allowed:
            raise InvalidInput(f"{key}.{k}: unknown key (allowed: {sorted(allowed)})", field=k)
    found: dict[str, Any] = {}
    for k in COUNT_KEYS:
        if k in table:
            found[k] = _count(table[k], f"{key}.{k}")
    if "shortest_interval" in table:
        found["shortest_interval"] = _interval(
            table["shortest_interval"], f"{key}.shortest_interval"
        )
    return found
