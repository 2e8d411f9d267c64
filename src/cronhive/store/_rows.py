"""Model objects to column values and back."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any
from uuid import UUID

from sqlalchemy.engine import RowMapping

from cronhive.errors import CronhiveError
from cronhive.model import (
    LIMIT_NAMES,
    Concurrency,
    Delivery,
    DeliveryState,
    Event,
    Execution,
    Job,
    JobSpec,
    Misfire,
    Node,
    NotifyOn,
    OutputChunk,
    RetryPolicy,
    RunLimits,
    RunSpec,
    RunState,
    ScriptRef,
    SqlSpec,
    Stream,
)
from cronhive.schedule import Schedule, parse_schedule, uses_seed

Row = RowMapping


def tags_value(tags: Iterable[str]) -> list[str]:
    return sorted(tags)


def run_values(run: RunSpec) -> dict[str, Any]:
    return {
        "command": list(run.command),
        "shell": run.shell,
        "env": dict(run.env),
        "cwd": run.cwd,
        "timeout": run.timeout,
        "run_as": run.run_as,
        "target_tags": tags_value(run.target_tags),
        "output_cap": run.output_cap,
        "sql": _sql_value(run.sql),
        **script_values(run.script),
        "limits": run.limits.values() if run.limits is not None else None,
    }


def _row_limits(value: Any) -> RunLimits | None:
    if not value:
        return None
    return RunLimits(**{k: int(v) for k, v in value.items() if k in LIMIT_NAMES})


def _sql_value(sql: SqlSpec | None) -> dict[str, Any] | None:
    if sql is None:
        return None
    return {
        "statement": sql.statement,
        "database": sql.database,
        "role": sql.role,
        "autocommit": sql.autocommit,
    }


def _row_sql(value: Any) -> SqlSpec | None:
    if value is None:
        return None
    return SqlSpec(
        statement=value["statement"],
        database=value["database"],
        role=value["role"],
        autocommit=bool(value.get("autocommit", False)),
    )


def script_values(script: ScriptRef | None) -> dict[str, Any]:
    if script is None:
        return dict.fromkeys(("script_digest", "script_interpreter", "script_name", "script_size"))
    return {
        "script_digest": script.digest,
        "script_interpreter": list(script.interpreter),
        "script_name": script.name,
        "script_size": script.size,
    }


def row_to_script(row: Row) -> ScriptRef | None:
    if row.get("script_digest") is None:
        return None
    return ScriptRef(
        digest=row["script_digest"],
        interpreter=tuple(row["script_interpreter"] or ()),
        name=row["script_name"] or "",
        size=row["script_size"] or 0,
    )


def row_to_run(row: Row) -> RunSpec:
    return RunSpec(
        command=tuple(row["command"]),
        shell=row["shell"],
        env=dict(row["env"]),
        cwd=row["cwd"],
        timeout=row["timeout"],
        run_as=row["run_as"],
        target_tags=frozenset(row["target_tags"]),
        output_cap=row["output_cap"],
        sql=_row_sql(row["sql"]),
        script=row_to_script(row),
        limits=_row_limits(row.get("limits")),
    )


def retry_values(retry: RetryPolicy) -> dict[str, Any]:
    return {
        "retry_max_retries": retry.max_retries,
        "retry_delay": retry.delay,
        "retry_backoff": retry.backoff,
        "retry_max_delay": retry.max_delay,
    }


def row_to_retry(row: Row) -> RetryPolicy:
    return RetryPolicy(
        max_retries=row["retry_max_retries"],
        delay=row["retry_delay"],
        backoff=row["retry_backoff"],
        max_delay=row["retry_max_delay"],
    )


def spec_values(spec: JobSpec) -> dict[str, Any]:
    """The columns a job's owner controls (everything but ids, counters and stamps)."""
    sched = spec.schedule
    return {
        "name": spec.name,
        "owner": spec.owner,
        **run_values(spec.run),
        "schedule_kind": None if sched is None else str(sched.kind),
        "schedule_expression": None if sched is None else str(sched.expression),
        "schedule_timezone": None if sched is None else str(sched.timezone),
        "schedule_dst_repeated": None if sched is None else str(sched.dst_repeated),
        "schedule_dst_skipped": None if sched is None else str(sched.dst_skipped),
        "enabled": spec.enabled,
        **retry_values(spec.retry),
        "concurrency": str(spec.concurrency),
        "misfire": str(spec.misfire),
        "misfire_grace": spec.misfire_grace,
        "description": spec.description,
        "notify": notify_value(spec.notify),
        "quarantine": None,  # a spec its owner wrote is read anew
    }


def notify_value(notify: Mapping[str, tuple[str, ...]]) -> dict[str, list[str]] | None:
    """{event: [targets]}, events and targets sorted; None when there are none."""
    value = {k: sorted(set(v)) for k, v in sorted(notify.items()) if v}
    return value or None


def row_to_notify(value: Any) -> dict[str, tuple[str, ...]]:
    return {str(k): tuple(v) for k, v in (value or {}).items()}


@lru_cache(maxsize=4096)
def _schedule(
    kind: str, expression: str, timezone: str, dst_repeated: str, dst_skipped: str, seed: str
) -> Schedule:
    # Parsing is not free and the same few schedules come back on every tick.
    return parse_schedule(
        kind,
        expression,
        timezone=timezone,
        dst_repeated=dst_repeated,
        dst_skipped=dst_skipped,
        seed=seed,
    )


def row_to_job(row: Row) -> Job:
    """The job of a row. A schedule this node cannot read (a newer node's kind, a zone
    gone from tzdata) does not fail the read: the job comes back without a schedule and
    with `quarantine` saying why, so the scheduler sets it aside and its owner sees it."""
    schedule = None
    quarantine = row["quarantine"]
    if row["schedule_kind"] is not None:
        try:
            schedule = _schedule(
                row["schedule_kind"],
                row["schedule_expression"],
                row["schedule_timezone"],
                row["schedule_dst_repeated"],
                row["schedule_dst_skipped"],
                # The name seeds H; jobs without it share one cache entry per expression.
                row["name"] if uses_seed(row["schedule_expression"]) else "",
            )
        except (CronhiveError, ValueError, LookupError) as exc:
            quarantine = quarantine or f"unreadable schedule: {exc}"
    spec = JobSpec(
        name=row["name"],
        owner=row["owner"],
        run=row_to_run(row),
        schedule=schedule,
        enabled=row["enabled"],
        retry=row_to_retry(row),
        concurrency=Concurrency(row["concurrency"]),
        misfire=Misfire(row["misfire"]),
        misfire_grace=row["misfire_grace"],
        description=row["description"],
        notify=row_to_notify(row["notify"]),
    )
    last_state = row["last_state"]
    return Job(
        id=row["id"],
        spec=spec,
        next_fire_at=row["next_fire_at"],
        success_count=row["success_count"],
        failure_count=row["failure_count"],
        last_run_at=row["last_run_at"],
        last_state=None if last_state is None else RunState(last_state),
        quarantine=quarantine,
        created_by=row["created_by"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def execution_values(ex: Execution) -> dict[str, Any]:
    return {
        "id": ex.id,
        "job_id": ex.job_id,
        "job_name": ex.job_name,
        "owner": ex.owner,
        **run_values(ex.run),
        **retry_values(ex.retry),
        "scheduled_for": ex.scheduled_for,
        "attempt": ex.attempt,
        "state": str(ex.state),
        "reason": ex.reason,
        "not_before": ex.not_before,
        "node_id": ex.node_id,
        "exit_code": ex.exit_code,
        "signal": ex.signal,
        "queued_at": ex.queued_at,
        "started_at": ex.started_at,
        "finished_at": ex.finished_at,
        "stop_requested": ex.stop_requested,
        "stdout_bytes": ex.stdout_bytes,
        "stderr_bytes": ex.stderr_bytes,
        "output_capped": ex.output_capped,
        "fence": ex.fence,
        "lost_total": ex.lost_total,
        "lost_streak": ex.lost_streak,
        "limits_applied": ex.limits_applied,
    }


def row_to_execution(row: Row) -> Execution:
    return Execution(
        id=row["id"],
        job_id=row["job_id"],
        job_name=row["job_name"],
        owner=row["owner"],
        run=row_to_run(row),
        retry=row_to_retry(row),
        scheduled_for=row["scheduled_for"],
        attempt=row["attempt"],
        state=RunState(row["state"]),
        reason=row["reason"],
        not_before=row["not_before"],
        node_id=row["node_id"],
        exit_code=row["exit_code"],
        signal=row["signal"],
        queued_at=row["queued_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        stop_requested=row["stop_requested"],
        stdout_bytes=row["stdout_bytes"],
        stderr_bytes=row["stderr_bytes"],
        output_capped=row["output_capped"],
        fence=row["fence"],
        lost_total=row["lost_total"],
        lost_streak=row["lost_streak"],
        limits_applied=row.get("limits_applied"),
    )


def row_to_node(row: Row, running: int = 0) -> Node:
    return Node(
        id=row["id"],
        name=row["name"],
        tags=frozenset(row["tags"]),
        capacity=row["capacity"],
        started_at=row["started_at"],
        heartbeat_at=row["heartbeat_at"],
        lease_expires_at=row["lease_expires_at"],
        running=running,
        down_since=row["down_since"],
        down_reason=row["down_reason"],
    )


def event_values(ev: Event) -> dict[str, Any]:
    return {
        "at": ev.at,
        "kind": ev.kind,
        "owner": ev.owner,
        "job_id": ev.job_id,
        "execution_id": ev.execution_id,
        "message": ev.message,
    }


def row_to_event(row: Row) -> Event:
    return Event(
        id=row["id"],
        at=row["at"],
        kind=row["kind"],
        owner=row["owner"],
        job_id=row["job_id"],
        execution_id=row["execution_id"],
        message=row["message"],
    )


def chunk_values(execution_id: UUID, chunk: OutputChunk) -> dict[str, Any]:
    return {
        "execution_id": execution_id,
        "stream": str(chunk.stream),
        "offset": chunk.offset,
        "seq": chunk.seq,
        "data": chunk.data,
    }


def row_to_chunk(row: Row) -> OutputChunk:
    return OutputChunk(
        execution_id=row["execution_id"],
        stream=Stream(row["stream"]),
        offset=row["offset"],
        seq=row["seq"],
        data=bytes(row["data"]),
    )


def delivery_values(d: Delivery) -> dict[str, Any]:
    return {
        "id": d.id,
        "event": str(d.event),
        "target": d.target,
        "owner": d.owner,
        "job_id": d.job_id,
        "job_name": d.job_name,
        "execution_id": d.execution_id,
        "payload": dict(d.payload),
        "state": str(d.state),
        "attempts": d.attempts,
        "next_attempt_at": d.next_attempt_at,
        "last_error": d.last_error,
        "claimed_by": d.claimed_by,
        "claim_expires_at": d.claim_expires_at,
        "created_at": d.created_at,
        "delivered_at": d.delivered_at,
    }


def row_to_delivery(row: Row) -> Delivery:
    return Delivery(
        id=row["id"],
        event=NotifyOn(row["event"]),
        target=row["target"],
        owner=row["owner"],
        job_id=row["job_id"],
        job_name=row["job_name"],
        execution_id=row["execution_id"],
        payload=dict(row["payload"]),
        state=DeliveryState(row["state"]),
        attempts=row["attempts"],
        next_attempt_at=row["next_attempt_at"],
        last_error=row["last_error"],
        claimed_by=row["claimed_by"],
        claim_expires_at=row["claim_expires_at"],
        created_at=row["created_at"],
        delivered_at=row["delivered_at"],
    )
