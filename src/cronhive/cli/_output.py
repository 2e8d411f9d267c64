"""What verbs print: aligned tables for people, JSON with stable keys for scripts.

Colour only when stdout is a terminal and $NO_COLOR is unset. Every `*_dict` function
returns the same keys whatever the message holds (absent values are null), so `--json`
output is a stable interface.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import click
from google.protobuf.timestamp_pb2 import Timestamp

from cronhive.api._generated.cronhive.v1 import cronhive_pb2 as pb
from cronhive.cli._limits import limits_dict
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


def _ts(msg: Any, field: str) -> str | None:
    if not msg.HasField(field):
        return None
    stamp: Timestamp = getattr(msg, field)
    return stamp.ToDatetime(tzinfo=UTC).isoformat().replace("+00:00", "Z")


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
    """A job with stable keys (timestamps ISO 8601 UTC, durations in seconds)."""
    schedule: dict[str, Any] | None = None
    if job.HasField("schedule"):
        s = job.schedule
        schedule = {
            "kind": s.kind,
            "expression": s.expression,
            "timezone": s.timezone or "UTC",
            "dst_repeated": s.dst_repeated,
            "dst_skipped": s.dst_skipped,
            "description": describe_schedule(s, job.name),
        }
    return {
        "id": job.id,
        "name": job.name,
        "owner": job.owner,
        "command": list(job.command),
        "sql": {
            "statement": job.sql.statement,
            "database": job.sql.database,
            "role": job.sql.role,
            "autocommit": job.sql.autocommit,
        }
        if job.HasField("sql")
        else None,
        "shell": job.shell,
        "env": dict(sorted(job.env.items())),
        "cwd": job.cwd or None,
        "schedule": schedule,
        "enabled": job.enabled,
        "timeout_seconds": job.timeout_seconds if job.HasField("timeout_seconds") else None,
        "retry": {
            "max_retries": job.retry.max_retries,
            "delay_seconds": job.retry.delay_seconds,
            "backoff": job.retry.backoff,
            "max_delay_seconds": job.retry.max_delay_seconds,
        },
        "concurrency": job.concurrency,
        "misfire": job.misfire,
        "misfire_grace_seconds": job.misfire_grace_seconds,
        "tags": list(job.target_tags),
        "description": job.description,
        "run_as": job.run_as or None,
        "script": _script(job),
        "output_cap_bytes": job.output_cap_bytes if job.HasField("output_cap_bytes") else None,
        "limits": limits_dict(job),
        "notify": {r.event: list(r.targets) for r in job.notify},
        "next_fire_at": _ts(job, "next_fire_at"),
        "last_run_at": _ts(job, "last_run_at"),
        "last_state": job.last_state or None,
        "quarantine": job.quarantine or None,
        "warning": job.warning or None,
        "success_count": job.success_count,
        "failure_count": job.failure_count,
        "created_at": _ts(job, "created_at"),
        "updated_at": _ts(job, "updated_at"),
    }


def execution_dict(e: pb.Execution) -> dict[str, Any]:
    """A run with stable keys; exit_code/signal are null when the process did not exit so."""
    return {
        "id": e.id,
        "job_id": e.job_id or None,
        "job_name": e.job_name or None,
        "owner": e.owner,
        "state": e.state,
        "attempt": e.attempt,
        "exit_code": e.exit_code if e.HasField("exit_code") else None,
        "signal": e.signal if e.HasField("signal") else None,
        "error": e.error or None,
        "reason": e.reason or None,
        "node_id": e.node_id or None,
        "node_name": e.node_name or None,
        "scheduled_for": _ts(e, "scheduled_for"),
        "queued_at": _ts(e, "queued_at"),
        "started_at": _ts(e, "started_at"),
        "finished_at": _ts(e, "finished_at"),
        "stdout_bytes": e.stdout_bytes,
        "stderr_bytes": e.stderr_bytes,
        "output_capped": e.output_capped,
        "script": _script(e),
        "target_tags": list(e.target_tags),
        "command": list(e.command),
        "shell": e.shell,
        "env": dict(sorted(e.env.items())),
        "not_before": _ts(e, "not_before"),
        "waiting": e.waiting or None,
        "limits": limits_dict(e),
        "limits_applied": e.limits_applied or None,
    }


def event_dict(e: pb.Event) -> dict[str, Any]:
    return {
        "id": e.id,
        "at": _ts(e, "at"),
        "kind": e.kind,
        "owner": e.owner or None,
        "job_id": e.job_id or None,
        "execution_id": e.execution_id or None,
        "message": e.message,
    }


def _script(msg: pb.Job | pb.Execution) -> dict[str, Any] | None:
    if not msg.HasField("script"):
        return None
    s = msg.script
    return {"digest": s.digest, "interpreter": list(s.interpreter), "name": s.name, "size": s.size}


def node_dict(n: pb.Node) -> dict[str, Any]:
    return {
        "id": n.id,
        "name": n.name,
        "tags": list(n.tags),
        "capacity": n.capacity,
        "running": n.running,
        "alive": n.alive,
        "state": n.state or ("up" if n.alive else "expired"),
        "heartbeat_at": _ts(n, "heartbeat_at"),
        "started_at": _ts(n, "started_at"),
        "down_since": _ts(n, "down_since"),
        "down_reason": n.down_reason or None,
    }


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
