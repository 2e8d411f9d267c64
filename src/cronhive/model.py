"""The model every part shares: jobs, executions, nodes, events, output chunks.

Frozen keyword-only dataclasses; instants are aware UTC datetimes. An *owner* is a
principal string, `user:<name>` or `group:<name>` (see cronhive.auth).
"""

from __future__ import annotations

import random
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from cronhive.schedule import Schedule


class RunState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    STOPPED = "stopped"
    LOST = "lost"
    SKIPPED = "skipped"

    @property
    def terminal(self) -> bool:
        return self not in (RunState.QUEUED, RunState.RUNNING)


TERMINAL_STATES = frozenset(s for s in RunState if s.terminal)
# States after which the retry policy may queue another attempt.
RETRYABLE_STATES = frozenset({RunState.FAILED, RunState.TIMED_OUT, RunState.LOST})


class Concurrency(StrEnum):
    """What a slot does while an earlier run of the same job is still active."""

    ALLOW = "allow"  # run alongside
    FORBID = "forbid"  # record the slot as skipped
    REPLACE = "replace"  # stop the active run, then run


class Misfire(StrEnum):
    """What happens to slots missed while no node was firing (all down, paused clock)."""

    ONCE = "once"  # run the latest missed slot once, if within the grace time
    ALL = "all"  # run every missed slot
    SKIP = "skip"  # record every missed slot as skipped


class NotifyOn(StrEnum):
    """What a job's outcome tells its notification targets about."""

    FAILURE = "failure"  # failed, timed_out or lost, and no retry follows
    RECOVERY = "recovery"  # the first success after such a failure
    SUCCESS = "success"
    MISSED = "missed"  # slots recorded skipped (misfire, overlap, DST)
    START = "start"  # a node took the run


class DeliveryState(StrEnum):
    PENDING = "pending"  # waiting for its (next) attempt
    DELIVERING = "delivering"  # claimed by a node, being sent
    DELIVERED = "delivered"
    FAILED = "failed"  # gave up; `cronhive notifications retry` queues it again


class Stream(StrEnum):
    STDOUT = "stdout"
    STDERR = "stderr"


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """Retries after failed, timed_out or lost: exponential backoff with full jitter."""

    max_retries: int = 0
    delay: float = 10.0  # seconds before the first retry
    backoff: float = 2.0
    max_delay: float = 3600.0

    def delay_before(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before `attempt` (2 = first retry). Jitter spreads a thundering herd."""
        base = min(self.max_delay, self.delay * self.backoff ** max(0, attempt - 2))
        return (rng or random).uniform(base / 2, base)

    def allows(self, attempt: int) -> bool:
        """Whether attempt number `attempt` (1 = first run) may be queued."""
        return attempt <= 1 + self.max_retries


@dataclass(frozen=True, kw_only=True)
class SqlSpec:
    """A SQL job's statement: sent as one text to a database the node configures, after
    `SET ROLE role` (see docs/sql-jobs.md). One transaction unless `autocommit`."""

    statement: str
    database: str  # a name from the node configuration's [databases.NAME]
    role: str  # the PostgreSQL role the statement runs as
    autocommit: bool = False


@dataclass(frozen=True, kw_only=True)
class ScriptRef:
    """A stored script a run executes: `interpreter... <cached file> command...`.

    `digest` is the SHA-256 (hex) of the body, which lives in the blob store; a new body
    is a new digest, so a job's versions and every run's version are told apart by it.
    """

    digest: str
    interpreter: tuple[str, ...]
    name: str = ""  # the file name it was uploaded from, for people
    size: int = 0


@dataclass(frozen=True, kw_only=True)
class RunLimits:
    """A job's (or an ad-hoc run's) own resource limits; ``None`` takes the node's.

    The node running it merges them with its own limits, which are also ceilings: a run
    may lower a limit, never raise it (see docs/runner.md, "A job's own limits").
    """

    memory_bytes: int | None = None  # cgroup v2 memory.max, else RLIMIT_AS per process
    processes: int | None = None  # cgroup v2 pids.max per run, else RLIMIT_NPROC per uid
    open_files: int | None = None  # RLIMIT_NOFILE per process
    cpu_seconds: int | None = None  # RLIMIT_CPU per process (SIGXCPU, then SIGKILL)
    cpu_weight: int | None = None  # cgroup v2 cpu.weight (1-10000) only

    def values(self) -> dict[str, int]:
        """The fields that are set, by name."""
        return {k: v for k in LIMIT_NAMES if (v := getattr(self, k)) is not None}

    def describe(self) -> str:
        """`memory 64M, processes 5` (empty: none set), for show and the web."""
        return ", ".join(f"{LIMIT_WORDS[k]} {limit_text(k, v)}" for k, v in self.values().items())


LIMIT_NAMES = ("memory_bytes", "processes", "open_files", "cpu_seconds", "cpu_weight")
LIMIT_WORDS = {
    "memory_bytes": "memory",
    "processes": "processes",
    "open_files": "open files",
    "cpu_seconds": "cpu time",
    "cpu_weight": "cpu weight",
}


def limit_text(name: str, value: int) -> str:
    """One limit's value as people write it: `64M` for bytes, `90s` for CPU time."""
    if name == "memory_bytes":
        for unit, size in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
            if value >= size and value % size == 0:
                return f"{value // size}{unit}"
        return str(value)
    return f"{value}s" if name == "cpu_seconds" else str(value)


@dataclass(frozen=True, kw_only=True)
class RunSpec:
    """What to run: shared by jobs and by the executions they queue (a snapshot)."""

    command: tuple[str, ...]
    shell: bool = False
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None
    timeout: float | None = None  # seconds
    run_as: str | None = None
    target_tags: frozenset[str] = frozenset()
    output_cap: int | None = None  # bytes per run; None = the node's default
    sql: SqlSpec | None = None  # set: a SQL job (`command` is empty); see cronhive.sqljobs
    # A stored script to run (command then holds only its arguments); None: command.
    script: ScriptRef | None = None
    limits: RunLimits | None = None  # the run's own resource limits; None: the node's


@dataclass(frozen=True, kw_only=True)
class JobSpec:
    """A job as its owner defines it."""

    name: str
    owner: str
    run: RunSpec
    schedule: Schedule | None = None  # None: runs only when triggered
    enabled: bool = True
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    concurrency: Concurrency = Concurrency.ALLOW
    misfire: Misfire = Misfire.ONCE
    misfire_grace: float = 300.0  # seconds; `once` runs a missed slot at most this late
    description: str = ""
    # Reactions: event (a `NotifyOn` value) -> names of targets in the node configuration.
    notify: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class Job:
    """A stored job: its spec plus what the cluster keeps about it."""

    id: UUID
    spec: JobSpec
    next_fire_at: datetime | None
    success_count: int = 0
    failure_count: int = 0
    last_run_at: datetime | None = None
    last_state: RunState | None = None
    quarantine: str | None = None  # why the scheduler set the job aside; None: it fires
    created_by: str = ""
    created_at: datetime
    updated_at: datetime

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def owner(self) -> str:
        return self.spec.owner


@dataclass(frozen=True, kw_only=True)
class Execution:
    """One attempt at one slot (or one ad-hoc run). History is append-only: a retry is a
    new row with the next attempt number, never an update of an old one."""

    id: UUID
    job_id: UUID | None  # None for ad-hoc runs
    job_name: str | None
    owner: str
    run: RunSpec
    retry: RetryPolicy = field(default_factory=RetryPolicy)  # snapshot, for reap and finish
    scheduled_for: datetime
    attempt: int = 1
    state: RunState = RunState.QUEUED
    reason: str | None = None  # why skipped, lost, stopped or failed to start
    not_before: datetime  # not claimable earlier (retry backoff)
    node_id: UUID | None = None
    exit_code: int | None = None
    signal: int | None = None
    queued_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    stop_requested: bool = False
    stdout_bytes: int = 0
    stderr_bytes: int = 0
    output_capped: bool = False
    fence: int | None = None  # fencing token, given when a node takes the run
    lost_total: int = 0  # earlier attempts of this slot lost with their node
    lost_streak: int = 0  # ... of them in a row, just before this one
    # What the node applied of the limits, and how (set when the run ends; None: it
    # asked for none, so the node's own limits applied).
    limits_applied: str | None = None

    @property
    def failures(self) -> int:
        """Earlier attempts of this slot that failed on their own (not lost)."""
        return self.attempt - 1 - self.lost_total


@dataclass(frozen=True, kw_only=True)
class Outcome:
    """How a run ended, as the node running it reports it."""

    state: RunState
    exit_code: int | None = None
    signal: int | None = None
    reason: str | None = None
    finished_at: datetime
    stdout_bytes: int = 0
    stderr_bytes: int = 0
    output_capped: bool = False
    limits_applied: str | None = None  # see Execution.limits_applied


@dataclass(frozen=True, kw_only=True)
class Node:
    id: UUID
    name: str
    tags: frozenset[str]
    capacity: int
    started_at: datetime
    heartbeat_at: datetime
    lease_expires_at: datetime
    running: int = 0  # executions in state running on this node
    down_since: datetime | None = None  # reaped or left; kept listed for a while
    down_reason: str | None = None

    def alive(self, now: datetime) -> bool:
        return self.down_since is None and self.lease_expires_at > now

    def state(self, now: datetime) -> str:
        """`up`, `down` (reaped or left), or `expired` (lease lapsed, not yet reaped)."""
        if self.down_since is not None:
            return "down"
        return "up" if self.lease_expires_at > now else "expired"


@dataclass(frozen=True, kw_only=True)
class Event:
    id: int
    at: datetime
    kind: str  # e.g. job.created, run.queued, run.started, run.finished, run.lost, node.joined
    owner: str | None
    job_id: UUID | None = None
    execution_id: UUID | None = None
    message: str = ""


@dataclass(frozen=True, kw_only=True)
class OutputChunk:
    execution_id: UUID
    stream: Stream
    offset: int  # byte offset within the stream
    seq: int  # order across both streams of the run
    data: bytes


def command_line(command: Sequence[str], shell: bool = False) -> str:
    """The command as a shell would take it back (`shlex.join`): what `show` and the web
    display, so `echo 'a b'` is not shown as the two words `echo a b`. A shell run reads
    as the `/bin/sh -c SCRIPT` it is."""
    if shell and command:
        return shlex.join(["/bin/sh", "-c", command[0], *command[1:]])
    return shlex.join(command)


@dataclass(frozen=True, kw_only=True)
class Delivery:
    """One notification of one event to one target: a row of the outbox, written in the
    transaction that recorded the event, claimed and sent by any node."""

    id: UUID
    event: NotifyOn
    target: str
    owner: str
    job_id: UUID | None
    job_name: str | None
    execution_id: UUID | None
    payload: Mapping[str, Any]  # what the event says; never a secret (no env, no target)
    state: DeliveryState = DeliveryState.PENDING
    attempts: int = 0
    next_attempt_at: datetime
    last_error: str | None = None
    claimed_by: UUID | None = None
    claim_expires_at: datetime | None = None
    created_at: datetime
    delivered_at: datetime | None = None
