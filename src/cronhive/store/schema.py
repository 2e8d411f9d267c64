"""The tables, as SQLAlchemy Core metadata: the one declaration migrations must match.

Columns mirror cronhive.model. Where a guarantee lives in the schema it says so:
- `uq_jobs_owner_name`: a name is unique per owner.
- `uq_executions_slot`: one execution per (job, slot, attempt): a double fire cannot be
  stored, whichever nodes race. Ad-hoc runs have job_id NULL, which never clashes.
- No foreign key from executions to jobs or nodes: history outlives both.
"""

from __future__ import annotations

import sqlalchemy as sa

from cronhive.store._types import UTCDateTime, id_type, json_type, tags_type

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING)


def _run_columns() -> list[sa.Column[object]]:
    """The RunSpec columns, shared by jobs and the executions that snapshot them."""
    return [
        sa.Column("command", json_type(), nullable=False),
        sa.Column("shell", sa.Boolean(), nullable=False),
        sa.Column("env", json_type(), nullable=False),
        sa.Column("cwd", sa.Text()),
        sa.Column("timeout", sa.Float()),
        sa.Column("run_as", sa.Text()),
        sa.Column("target_tags", tags_type(), nullable=False),
        sa.Column("output_cap", sa.BigInteger()),
        # A stored script (RunSpec.script): its digest, interpreter argv, name and size.
        sa.Column("script_digest", sa.Text()),
        sa.Column("script_interpreter", json_type()),
        sa.Column("script_name", sa.Text()),
        sa.Column("script_size", sa.BigInteger()),
        # RunSpec.limits: {memory_bytes, processes, ...} those set; NULL: the node's.
        sa.Column("limits", json_type()),
    ]


def _retry_columns() -> list[sa.Column[object]]:
    # On jobs, and snapshotted on executions: the reaper decides retries from the row.
    return [
        sa.Column("retry_max_retries", sa.Integer(), nullable=False),
        sa.Column("retry_delay", sa.Float(), nullable=False),
        sa.Column("retry_backoff", sa.Float(), nullable=False),
        sa.Column("retry_max_delay", sa.Float(), nullable=False),
    ]


jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", sa.Uuid(), primary_key=True),
    sa.Column("name", sa.Text(), nullable=False),
    sa.Column("owner", sa.Text(), nullable=False),
    *_run_columns(),
    sa.Column("schedule_kind", sa.Text()),
    sa.Column("schedule_expression", sa.Text()),
    sa.Column("schedule_timezone", sa.Text()),
    sa.Column("schedule_dst_repeated", sa.Text()),
    sa.Column("schedule_dst_skipped", sa.Text()),
    sa.Column("enabled", sa.Boolean(), nullable=False),
    *_retry_columns(),
    sa.Column("concurrency", sa.Text(), nullable=False),
    sa.Column("misfire", sa.Text(), nullable=False),
    sa.Column("misfire_grace", sa.Float(), nullable=False),
    sa.Column("description", sa.Text(), nullable=False),
    sa.Column("next_fire_at", UTCDateTime()),
    sa.Column("success_count", sa.BigInteger(), nullable=False),
    sa.Column("failure_count", sa.BigInteger(), nullable=False),
    sa.Column("last_run_at", UTCDateTime()),
    sa.Column("last_state", sa.Text()),
    # Why the scheduler set this job aside (a row it cannot read or plan); NULL: fine.
    sa.Column("quarantine", sa.Text()),
    # Reactions: {event: [target names]}; NULL: none. `failing`: the last run that counts
    # ended a failure with no retry after it (the next success is a recovery).
    sa.Column("notify", json_type()),
    sa.Column("failing", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("created_by", sa.Text(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    # A SQL job's statement, database, role, autocommit (RunSpec.sql); NULL: a command.
    sa.Column("sql", json_type()),
    sa.UniqueConstraint("owner", "name"),
)
# Partial: the scheduler's tick reads only due, enabled jobs; its cost follows them.
sa.Index(
    "ix_jobs_due",
    jobs.c.next_fire_at,
    postgresql_where=jobs.c.enabled,
    sqlite_where=jobs.c.enabled,
)

executions = sa.Table(
    "executions",
    metadata,
    sa.Column("id", sa.Uuid(), primary_key=True),
    sa.Column("job_id", sa.Uuid()),
    sa.Column("job_name", sa.Text()),
    sa.Column("owner", sa.Text(), nullable=False),
    *_run_columns(),
    *_retry_columns(),
    sa.Column("scheduled_for", UTCDateTime(), nullable=False),
    sa.Column("attempt", sa.Integer(), nullable=False),
    sa.Column("state", sa.Text(), nullable=False),
    sa.Column("reason", sa.Text()),
    sa.Column("not_before", UTCDateTime(), nullable=False),
    sa.Column("node_id", sa.Uuid()),
    sa.Column("exit_code", sa.Integer()),
    sa.Column("signal", sa.Integer()),
    sa.Column("queued_at", UTCDateTime(), nullable=False),
    sa.Column("started_at", UTCDateTime()),
    sa.Column("finished_at", UTCDateTime()),
    sa.Column("stop_requested", sa.Boolean(), nullable=False),
    sa.Column("stdout_bytes", sa.BigInteger(), nullable=False),
    sa.Column("stderr_bytes", sa.BigInteger(), nullable=False),
    sa.Column("output_capped", sa.Boolean(), nullable=False),
    # Set when a node takes the run: a job's resource refuses writers with a lower one.
    sa.Column("fence", sa.BigInteger()),
    # Attempts of this slot lost with their node (all, and in a row): a lost attempt is
    # not the job's failure, and a run that keeps killing its node must stop somewhere.
    sa.Column("lost_total", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("lost_streak", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("sql", json_type()),  # the job's RunSpec.sql, snapshot
    # What the node applied of the run's limits and how, written with its end.
    sa.Column("limits_applied", sa.Text()),
    # How the run ended, written by the node's supervisor while the lease still held,
    # when the node itself could not record it (frozen, or killed before its commit):
    # the reaper then records that end instead of `lost` (engine/_supervisor.py).
    sa.Column("witness", json_type()),
    sa.UniqueConstraint("job_id", "scheduled_for", "attempt", name="uq_executions_slot"),
)
# Claiming: queued rows by due time.
sa.Index("ix_executions_claim", executions.c.state, executions.c.not_before)
# History of one job, newest first; and all runs, newest first.
sa.Index("ix_executions_history", executions.c.job_id, executions.c.queued_at)
sa.Index("ix_executions_queued_at", executions.c.queued_at, executions.c.id)
sa.Index("ix_executions_fence", executions.c.fence)
# Reaping and node load: the running rows of one node.
sa.Index(
    "ix_executions_running",
    executions.c.node_id,
    postgresql_where=executions.c.state == "running",
    sqlite_where=executions.c.state == "running",
)

output_chunks = sa.Table(
    "output_chunks",
    metadata,
    sa.Column("execution_id", sa.Uuid(), primary_key=True),
    sa.Column("stream", sa.Text(), primary_key=True),
    sa.Column("offset", sa.BigInteger(), primary_key=True, autoincrement=False),
    sa.Column("seq", sa.BigInteger(), nullable=False),
    sa.Column("data", sa.LargeBinary(), nullable=False),
)
sa.Index("ix_output_chunks_seq", output_chunks.c.execution_id, output_chunks.c.seq)

nodes = sa.Table(
    "nodes",
    metadata,
    sa.Column("id", sa.Uuid(), primary_key=True),
    sa.Column("name", sa.Text(), nullable=False),
    sa.Column("tags", tags_type(), nullable=False),
    sa.Column("capacity", sa.Integer(), nullable=False),
    sa.Column("started_at", UTCDateTime(), nullable=False),
    sa.Column("heartbeat_at", UTCDateTime(), nullable=False),
    sa.Column("lease_expires_at", UTCDateTime(), nullable=False),
    # Set once the node is known gone (reaped or left); the row stays for operators.
    sa.Column("down_since", UTCDateTime()),
    sa.Column("down_reason", sa.Text()),
)
sa.Index("ix_nodes_lease", nodes.c.lease_expires_at)

# PostgreSQL hands out fencing tokens from a sequence (no row every node would contend
# for); SQLite, one writer, takes max(fence) + 1 inside its write transaction.
FENCE = sa.Sequence("execution_fence", metadata=metadata)

events = sa.Table(
    "events",
    metadata,
    sa.Column("id", id_type(), primary_key=True, autoincrement=True),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("kind", sa.Text(), nullable=False),
    sa.Column("owner", sa.Text()),
    sa.Column("job_id", sa.Uuid()),
    sa.Column("execution_id", sa.Uuid()),
    sa.Column("message", sa.Text(), nullable=False),
)

# Personal access tokens (web sign-in, JSON API): only a digest of the secret is kept.
tokens = sa.Table(
    "tokens",
    metadata,
    sa.Column("id", sa.Uuid(), primary_key=True),
    sa.Column("user", sa.Text(), nullable=False),
    sa.Column("groups", tags_type(), nullable=False),
    sa.Column("name", sa.Text(), nullable=False),
    sa.Column("hash", sa.Text(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("expires_at", UTCDateTime()),
    sa.Column("last_used_at", UTCDateTime()),
    sa.Column("revoked_at", UTCDateTime()),
)
# A name is unique among a user's live tokens; a revoked one frees its name.
sa.Index(
    "uq_tokens_live_name",
    tokens.c.user,
    tokens.c.name,
    unique=True,
    postgresql_where=tokens.c.revoked_at.is_(None),
    sqlite_where=tokens.c.revoked_at.is_(None),
)

# Who may read which script body (the body itself is in the blob store, by digest): one
# row per (digest, owner) that uploaded it; a digest nobody here owns answers not found.
scripts = sa.Table(
    "scripts",
    metadata,
    sa.Column("digest", sa.Text(), primary_key=True),
    sa.Column("owner", sa.Text(), primary_key=True),
    sa.Column("name", sa.Text(), nullable=False),
    sa.Column("size", sa.BigInteger(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
)

# Cluster-wide chores one node at a time (retention): the node holding each, until when.
maintenance = sa.Table(
    "maintenance",
    metadata,
    sa.Column("task", sa.Text(), primary_key=True),
    sa.Column("node_id", sa.Uuid(), nullable=False),
    sa.Column("until", UTCDateTime(), nullable=False),
)

# A run's output once it is in the blob store: written only after the objects were
# verified, and before the run's output_chunks rows are deleted (readers check it when
# chunks run short). `manifest` locates every chunk (see cronhive.blobs.archive).
output_archives = sa.Table(
    "output_archives",
    metadata,
    sa.Column("execution_id", sa.Uuid(), primary_key=True),
    sa.Column("archived_at", UTCDateTime(), nullable=False),
    sa.Column("manifest", json_type(), nullable=False),
)
# Web sign-in sessions (store.sessions): the cookie's id is kept only as its SHA-256.
web_sessions = sa.Table(
    "web_sessions",
    metadata,
    sa.Column("digest", sa.Text(), primary_key=True),
    sa.Column("token_id", sa.Uuid(), nullable=False),
    sa.Column("token_digest", sa.Text(), nullable=False),
    sa.Column("csrf", sa.Text(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("expires_at", UTCDateTime(), nullable=False),
)
sa.Index("ix_web_sessions_expires_at", web_sessions.c.expires_at)

# The outbox of reactions: rows are written in the transaction that records the event,
# so an outcome and its notifications commit together or not at all. Any node claims a
# due row (SKIP LOCKED on PostgreSQL), sends it and records the result;
# `uq_deliveries_event`: one row per event and target, however often a writer retries.
deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("id", sa.Uuid(), primary_key=True),
    sa.Column("event", sa.Text(), nullable=False),
    sa.Column("target", sa.Text(), nullable=False),
    sa.Column("owner", sa.Text(), nullable=False),
    sa.Column("job_id", sa.Uuid()),
    sa.Column("job_name", sa.Text()),
    sa.Column("execution_id", sa.Uuid()),
    sa.Column("payload", json_type(), nullable=False),
    sa.Column("state", sa.Text(), nullable=False),
    sa.Column("attempts", sa.Integer(), nullable=False),
    sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
    sa.Column("last_error", sa.Text()),
    sa.Column("claimed_by", sa.Uuid()),
    sa.Column("claim_expires_at", UTCDateTime()),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("delivered_at", UTCDateTime()),
    sa.UniqueConstraint("execution_id", "event", "target", name="uq_deliveries_event"),
)
# Claiming: due rows by state and time; a job's list, newest first.
sa.Index("ix_deliveries_due", deliveries.c.state, deliveries.c.next_attempt_at)
sa.Index("ix_deliveries_job", deliveries.c.job_id, deliveries.c.created_at)

# An owner's default reactions: for each event a job has no rule of its own for.
notify_defaults = sa.Table(
    "notify_defaults",
    metadata,
    sa.Column("owner", sa.Text(), primary_key=True),
    sa.Column("notify", json_type(), nullable=False),
    sa.Column("updated_by", sa.Text(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)
