"""Local checks of flag syntax (durations, K=V, tags), so a typo gets a clear line and exit 2
before anything is sent. The server still validates every limit (api.validate)."""

from __future__ import annotations

from collections.abc import Iterable

import click

from cronhive.config._limits import parse_size
from cronhive.errors import InvalidInput
from cronhive.schedule import parse_duration

__all__ = ["COMMAND_SETTINGS", "env_pairs", "parse_size", "seconds", "size"]

# Everything after the first word of the command belongs to the command: `run ls -l`.
COMMAND_SETTINGS = {"allow_interspersed_args": False}


def seconds(text: str, option: str) -> float:
    """A duration (`90s`, `5m`, `1h30m`, `2d`, `45`) in seconds; UsageError naming `option`."""
    try:
        return parse_duration(text).total_seconds()
    except InvalidInput as exc:
        raise click.UsageError(f"{option}: {exc}") from None


def env_pairs(items: Iterable[str], option: str = "--env") -> dict[str, str]:
    """`K=V` strings as a dict (the last of a repeated K wins); UsageError otherwise."""
    env: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.UsageError(f"{option}: expected NAME=VALUE, got {item!r}")
        env[key] = value
    return env


def size(text: str, option: str) -> int:
    """A byte size (`65536`, `512K`, `64M`, `1G`); UsageError naming `option`."""
    try:
        return parse_size(text, option.lstrip("-").replace("-", "_"))
    except InvalidInput as exc:
        raise click.UsageError(f"{option}: {str(exc).split(': ', 1)[-1]}") from None
