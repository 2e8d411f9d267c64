"""Model objects as JSON-ready dicts (the shapes the OpenAPI document declares)."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any
from uuid import UUID

from cronhive.errors import InvalidInput
from cronhive.model import Execution, Job, Node, OutputChunk, ScriptRef, SqlSpec

__all__ = [
    "chunk_json",
    "decode_cursor",
    "decode_run_cursor",
    "encode_cursor",
    "job_json",
    "node_json",
    "run_json",
]


def _t(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat()


def job_json(job: Job) -> dict[str, Any]:
    spec, sched = job.spec, job.spec.schedule
    return {
        "id": str(job.id),
        "name": job.name,
        "owner": job.owner,
        "command": list(spec.run.command),
        "shell": spec.run.shell,
        "schedule": None
        if sched is None
        else {
            "kind": str(sched.kind),
            "expression": sched.expression,
            "timezone": sched.timezone,
            "description": sched.describe(),
        },
        "enabled": spec.enabled,
        "description": spec.description,
        "target_tags": sorted(spec.run.target_tags),
        "timeout_seconds": spec.run.timeout,
        "concurrency": str(spec.concurrency),
        "next_fire_at": _t(job.next_fire_at),
        "last_run_at": _t(job.last_run_at),
        "last_state": None if job.last_state is None else str(job.last_state),
        "quarantine": job.quarantine,
        "success_count": job.success_count,
        "failure_count": job.failure_count,
        "created_at": _t(job.created_at),
        "updated_at": _t(job.updated_at),
        "sql": sql_json(spec.run.sql),
        "script": script_json(spec.run.script),
        "limits": spec.run.limits.values() if spec.run.limits else None,
    }


def sql_json(sql: SqlSpec | None) -> dict[str, Any] | None:
    """A SQL job's statement, database, role and mode (never a credential: none is kept)."""
    if sql is None:
        return None
    return {
        "statement": sql.statement,
        "database": sql.database,
        "role": sql.role,
        "autocommit": sql.autocommit,
    }


def script_json(script: ScriptRef | None) -> dict[str, Any] | None:
    if script is None:
        return None
    return {
        "digest": script.digest,
        "interpreter": list(script.interpreter),
        "name": script.name,
        "size": script.size,
    }


def run_json(ex: Execution, node_names: dict[UUID, str] | None = None) -> dict[str, Any]:
    return {
        "id": str(ex.id),
        "job_id": None if ex.job_id is None else str(ex.job_id),
        "job_name": ex.job_name,
        "owner": ex.owner,
        "command": list(ex.run.command),
        "env": dict(sorted(ex.run.env.items())),
        "sql": sql_json(ex.run.sql),
        "script": script_json(ex.run.script),
        "state": str(ex.state),
        "reason": ex.reason,
        "attempt": ex.attempt,
        "scheduled_for": _t(ex.scheduled_for),
        "queued_at": _t(ex.queued_at),
        "started_at": _t(ex.started_at),
        "finished_at": _t(ex.finished_at),
        "exit_code": ex.exit_code,
        "signal": ex.signal,
        "node_id": None if ex.node_id is None else str(ex.node_id),
        "node_name": (node_names or {}).get(ex.node_id) if ex.node_id else None,
        "stop_requested": ex.stop_requested,
        "stdout_bytes": ex.stdout_bytes,
        "stderr_bytes": ex.stderr_bytes,
        "limits": ex.run.limits.values() if ex.run.limits else None,
        "limits_applied": ex.limits_applied,
    }


def node_json(node: Node, now: datetime) -> dict[str, Any]:
    return {
        "id": str(node.id),
        "name": node.name,
        "tags": sorted(node.tags),
        "capacity": node.capacity,
        "running": node.running,
        "started_at": _t(node.started_at),
        "heartbeat_at": _t(node.heartbeat_at),
        "heartbeat_age_seconds": round((now - node.heartbeat_at).total_seconds(), 3),
        "alive": node.alive(now),
        "state": node.state(now),
        "down_since": None if node.down_since is None else _t(node.down_since),
        "down_reason": node.down_reason,
    }


def chunk_json(chunk: OutputChunk) -> dict[str, Any]:
    return {
        "stream": str(chunk.stream),
        "offset": chunk.offset,
        "seq": chunk.seq,
        "text": chunk.data.decode("utf-8", errors="replace"),
    }


def encode_cursor(values: list[str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


def decode_cursor(text: str, arity: int, field: str) -> list[str]:
    """The values of a cursor made by `encode_cursor`; InvalidInput for anything else."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        values = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise InvalidInput(f"{field}: not a cursor this server made", field=field) from None
    if (
        not isinstance(values, list)
        or len(values) != arity
        or not all(isinstance(v, str) and _encodable(v) for v in values)
    ):
        raise InvalidInput(f"{field}: not a cursor this server made", field=field)
    return values


def _encodable(text: str) -> bool:
    """False for a string no database can take (a lone surrogate from a JSON escape)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def decode_run_cursor(text: str, field: str = "before") -> tuple[datetime, UUID]:
    """The (queued_at, id) of a runs cursor made by `encode_cursor`; InvalidInput naming
    `field` for anything else (a naive time, a bad UUID...)."""
    at, run_id = decode_cursor(text, 2, field)
    try:
        when, uuid = datetime.fromisoformat(at), UUID(run_id)
    except ValueError:
        raise InvalidInput(f"{field}: not a cursor this server made", field=field) from None
    if when.tzinfo is None or when.utcoffset() is None:
        raise InvalidInput(f"{field}: not a cursor this server made", field=field)
    return when, uuid
