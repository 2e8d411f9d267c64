"""What verbs print: aligned tables for people, JSON with stable keys for scripts.

Colour only when stdout is a terminal and $NO_COLOR is unset. Every `*_dict` function
is the object's one JSON shape (api.shapes: the same keys whatever the message holds,
absent values null, and what the web's JSON API answers), so `--json` output is a
stable interface.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import click

from cronhive.api._generated.cronhive.v1 import cronhive_pb2 as pb
from cronhive.api.shapes import shape
from cronhive.errors import InvalidInput
from cronhive.schedule import parse_schedule

__all__ = [
    "describe_schedule",
    "echo_json",
    "event_dict",
    "execution_dict",
    "job_dict",
    "node_dict",
    "paint",
    "table",
    "when",
]

_STATE_COLOURS = {
    "succeeded": "green",
    "running": "cyan",
    "queued": "cyan",
    "failed": "red",
    "timed_out": "red",
    "lost": "red",
    "stopped": "yellow",
    "skipped": "yellow",
}


def use_colour() -> bool:
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def paint(text: str, state: str) -> str:
    """`text` coloured for a run state, or unchanged when colour is off."""
    colour = _STATE_COLOURS.get(state)
    return click.style(text, fg=colour) if colour and use_colour() else text


def when(iso: str | None) -> str:
    """An instant for people: local time to the second with its zone, '-' for none."""
    if iso is None:
        return "-"
    moment = datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone()
    return moment.strftime("%Y-%m-%d %H:%M:%S %Z")


def describe_schedule(schedule: pb.Schedule, seed: str = "") -> str:
    """The schedule in words (`at 03:00 every day (UTC)`), or its text if unparseable;
    `seed` is the job's name (it picks the values of H)."""
    try:
        return parse_schedule(
            schedule.kind or "cron",
            schedule.expression,
            timezone=schedule.timezone or "UTC",
            dst_repeated=schedule.dst_repeated or "auto",
            dst_skipped=schedule.dst_skipped or "auto",
            seed=seed,
        ).describe()
    except InvalidInput:
        return schedule.expression


def job_dict(job: pb.Job) -> dict[str, Any]:
    """A job's JSON: api.shapes, what the web's JSON API answers too (a job message not
    from a server, e.g. a dry run, gets its schedule described here)."""
    d = shape(job)
    if d["schedule"] is not None and not d["schedule"]["description"]:
        d["schedule"]["description"] = describe_schedule(job.schedule, job.name)
    return d


def execution_dict(e: pb.Execution) -> dict[str, Any]:
    """A run's JSON (api.shapes); exit_code/signal are null when it did not exit so."""
    return shape(e)


def event_dict(e: pb.Event) -> dict[str, Any]:
    return shape(e)


def node_dict(n: pb.Node) -> dict[str, Any]:
    return shape(n)


def echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=False))


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Left-aligned columns, two spaces apart; ANSI colour does not count as width."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(click.unstyle(cell)))

    def line(cells: Sequence[str]) -> str:
        padded = [c + " " * (w - len(click.unstyle(c))) for c, w in zip(cells, widths, strict=True)]
        return "  ".join(padded).rstrip()

    click.echo(line(headers))
    for row in rows:
        click.echo(line(row))


def fields(pairs: Mapping[str, str]) -> None:
    """`key: value` lines, keys aligned."""
    width = max(len(k) for k in pairs)
    for key, value in pairs.items():
        click.echo(f"{key + ':':<{width + 1}} {value}")
