"""Model -> protobuf: how stored things look on the wire (the reverse of api.validate)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from uuid import UUID

from google.protobuf.timestamp_pb2 import Timestamp

from cronhive.api._generated.cronhive.v1 import cronhive_pb2 as pb
from cronhive.model import (
    Delivery,
    Event,
    Execution,
    Job,
    JobSpec,
    Node,
    OutputChunk,
    RunLimits,
    RunState,
    ScriptRef,
    SqlSpec,
)
from cronhive.service import RunView

__all__ = [
    "chunk_pb",
    "event_pb",
    "execution_pb",
    "job_pb",
    "limits_pb",
    "node_pb",
    "notification_pb",
    "run_pb",
    "script_pb",
    "spec_pb",
    "sql_pb",
]


def _ts(target: Timestamp, value: datetime | None) -> None:
    if value is not None:
        target.FromDatetime(value)


def spec_pb(spec: JobSpec, out: pb.Job | None = None) -> pb.Job:
    """The spec fields of a Job message (what Create and Update read)."""
    msg = out if out is not None else pb.Job()
    run = spec.run
    msg.name = spec.name
    msg.owner = spec.owner
    msg.command.extend(run.command)
    msg.shell = run.shell
    msg.env.update(run.env)
    msg.cwd = run.cwd or ""
    if spec.schedule is not None:
        s = spec.schedule
        msg.schedule.kind = s.kind.value
        msg.schedule.expression = s.expression
        msg.schedule.timezone = s.timezone
        msg.schedule.dst_repeated = s.dst_repeated.value
        msg.schedule.dst_skipped = s.dst_skipped.value
    msg.enabled = spec.enabled
    if run.timeout is not None:
        msg.timeout_seconds = run.timeout
    msg.retry.max_retries = spec.retry.max_retries
    msg.retry.delay_seconds = spec.retry.delay
    msg.retry.backoff = spec.retry.backoff
    msg.retry.max_delay_seconds = spec.retry.max_delay
    msg.concurrency = spec.concurrency.value
    msg.misfire = spec.misfire.value
    msg.misfire_grace_seconds = spec.misfire_grace
    msg.target_tags.extend(sorted(run.target_tags))
    msg.description = spec.description
    msg.run_as = run.run_as or ""
    if run.output_cap is not None:
        msg.output_cap_bytes = run.output_cap
    for event, targets in sorted(spec.notify.items()):
        msg.notify.add(event=event, targets=sorted(targets))
    if run.sql is not None:
        msg.sql.CopyFrom(sql_pb(run.sql))
    if run.script is not None:
        script_pb(run.script, msg.script)
    if run.limits is not None:
        limits_pb(run.limits, msg.limits)
    return msg


def limits_pb(limits: RunLimits, out: pb.RunLimits) -> pb.RunLimits:
    for key, value in limits.values().items():
        setattr(out, key, value)
    return out


def script_pb(script: ScriptRef, out: pb.ScriptRef | None = None) -> pb.ScriptRef:
    msg = out if out is not None else pb.ScriptRef()
    msg.digest = script.digest
    msg.interpreter.extend(script.interpreter)
    msg.name = script.name
    msg.size = script.size
    return msg


def sql_pb(sql: SqlSpec) -> pb.SqlSpec:
    return pb.SqlSpec(
        statement=sql.statement, database=sql.database, role=sql.role, autocommit=sql.autocommit
    )


def job_pb(job: Job) -> pb.Job:
    msg = spec_pb(job.spec)
    msg.id = str(job.id)
    if job.spec.schedule is not None:
        msg.schedule.description = job.spec.schedule.describe()
    _ts(msg.next_fire_at, job.next_fire_at)
    msg.success_count = job.success_count
    msg.failure_count = job.failure_count
    _ts(msg.last_run_at, job.last_run_at)
    msg.last_state = job.last_state.value if job.last_state is not None else ""
    msg.quarantine = job.quarantine or ""
    _ts(msg.created_at, job.created_at)
    _ts(msg.updated_at, job.updated_at)
    return msg


def execution_pb(e: Execution, node_names: Mapping[UUID, str] | None = None) -> pb.Execution:
    msg = pb.Execution(
        id=str(e.id),
        job_id=str(e.job_id) if e.job_id else "",
        job_name=e.job_name or "",
        owner=e.owner,
        attempt=e.attempt,
        state=e.state.value,
        node_id=str(e.node_id) if e.node_id else "",
        node_name=(node_names or {}).get(e.node_id, "") if e.node_id else "",
        reason=e.reason or "",
        stdout_bytes=e.stdout_bytes,
        stderr_bytes=e.stderr_bytes,
        output_capped=e.output_capped,
        target_tags=sorted(e.run.target_tags),
        command=list(e.run.command),
        env=dict(e.run.env),
        shell=e.run.shell,
    )
    if e.run.sql is not None:
        msg.sql.CopyFrom(sql_pb(e.run.sql))
    # A failed run with neither exit code nor signal never started: its reason is the error.
    if e.state is RunState.FAILED and e.exit_code is None and e.signal is None:
        msg.error = e.reason or ""
    if e.exit_code is not None:
        msg.exit_code = e.exit_code
    if e.signal is not None:
        msg.signal = e.signal
    _ts(msg.scheduled_for, e.scheduled_for)
    _ts(msg.queued_at, e.queued_at)
    _ts(msg.started_at, e.started_at)
    _ts(msg.finished_at, e.finished_at)
    if e.run.script is not None:
        script_pb(e.run.script, msg.script)
    _ts(msg.not_before, e.not_before)
    if e.run.limits is not None:
        limits_pb(e.run.limits, msg.limits)
    msg.limits_applied = e.limits_applied or ""
    return msg


def run_pb(view: RunView) -> pb.Execution:
    """A run as answered (service.RunView: live sizes, its node's name, why it waits)."""
    e = view.execution
    msg = execution_pb(e, {e.node_id: view.node_name} if e.node_id and view.node_name else None)
    msg.waiting = view.waiting
    return msg


def node_pb(node: Node, now: datetime) -> pb.Node:
    msg = pb.Node(
        id=str(node.id),
        name=node.name,
        tags=sorted(node.tags),
        capacity=node.capacity,
        running=node.running,
        alive=node.alive(now),
        state=node.state(now),
        down_reason=node.down_reason or "",
    )
    _ts(msg.heartbeat_at, node.heartbeat_at)
    _ts(msg.started_at, node.started_at)
    _ts(msg.down_since, node.down_since)
    return msg


def event_pb(event: Event) -> pb.Event:
    msg = pb.Event(
        id=event.id,
        kind=event.kind,
        job_id=str(event.job_id) if event.job_id else "",
        execution_id=str(event.execution_id) if event.execution_id else "",
        owner=event.owner or "",
        message=event.message,
    )
    _ts(msg.at, event.at)
    return msg


def chunk_pb(chunk: OutputChunk, skip: int = 0) -> pb.OutputChunk:
    """The chunk without its first `skip` bytes (a reader resuming mid-chunk)."""
    return pb.OutputChunk(
        stream=chunk.stream.value, offset=chunk.offset + skip, data=chunk.data[skip:]
    )


def notification_pb(d: Delivery) -> pb.Notification:
    msg = pb.Notification(
        id=str(d.id),
        event=str(d.event),
        target=d.target,
        owner=d.owner,
        job_id=str(d.job_id) if d.job_id else "",
        job_name=d.job_name or "",
        execution_id=str(d.execution_id) if d.execution_id else "",
        state=str(d.state),
        attempts=d.attempts,
        last_error=d.last_error or "",
        payload_json=json.dumps(d.payload, sort_keys=True),
    )
    msg.next_attempt_at.FromDatetime(d.next_attempt_at)
    msg.created_at.FromDatetime(d.created_at)
    if d.delivered_at is not None:
        msg.delivered_at.FromDatetime(d.delivered_at)
    return msg
