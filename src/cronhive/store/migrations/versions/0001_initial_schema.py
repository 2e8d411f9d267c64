"""initial schema: jobs, executions, output_chunks, nodes, events

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of cronhive.store._types, so this revision never changes under us.
UTC_TS = sa.BigInteger().with_variant(postgresql.TIMESTAMP(timezone=True), "postgresql")
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TAGS = sa.JSON().with_variant(postgresql.ARRAY(sa.Text()), "postgresql")
SERIAL = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _run_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("command", JSON, nullable=False),
        sa.Column("shell", sa.Boolean(), nullable=False),
        sa.Column("env", JSON, nullable=False),
        sa.Column("cwd", sa.Text()),
        sa.Column("timeout", sa.Float()),
        sa.Column("run_as", sa.Text()),
        sa.Column("target_tags", TAGS, nullable=False),
        sa.Column("output_cap", sa.BigInteger()),
    ]


def _retry_columns() -> list[sa.Column[object]]:
    # On jobs, and snapshotted on executions: the reaper decides retries from the row.
    return [
        sa.Column("retry_max_retries", sa.Integer(), nullable=False),
        sa.Column("retry_delay", sa.Float(), nullable=False),
        sa.Column("retry_backoff", sa.Float(), nullable=False),
        sa.Column("retry_max_delay", sa.Float(), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.Uuid(), nullable=False),
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
        sa.Column("next_fire_at", UTC_TS),
        sa.Column("success_count", sa.BigInteger(), nullable=False),
        sa.Column("failure_count", sa.BigInteger(), nullable=False),
        sa.Column("last_run_at", UTC_TS),
        sa.Column("last_state", sa.Text()),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column("created_at", UTC_TS, nullable=False),
        sa.Column("updated_at", UTC_TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_jobs"),
        sa.UniqueConstraint("owner", "name", name="uq_jobs_owner_name"),
    )
    op.create_index(
        "ix_jobs_due",
        "jobs",
        ["next_fire_at"],
        postgresql_where=sa.text("enabled"),
        sqlite_where=sa.text("enabled"),
    )

    op.create_table(
        "executions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("job_id", sa.Uuid()),
        sa.Column("job_name", sa.Text()),
        sa.Column("owner", sa.Text(), nullable=False),
        *_run_columns(),
        *_retry_columns(),
        sa.Column("scheduled_for", UTC_TS, nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text()),
        sa.Column("not_before", UTC_TS, nullable=False),
        sa.Column("node_id", sa.Uuid()),
        sa.Column("exit_code", sa.Integer()),
        sa.Column("signal", sa.Integer()),
        sa.Column("queued_at", UTC_TS, nullable=False),
        sa.Column("started_at", UTC_TS),
        sa.Column("finished_at", UTC_TS),
        sa.Column("stop_requested", sa.Boolean(), nullable=False),
        sa.Column("stdout_bytes", sa.BigInteger(), nullable=False),
        sa.Column("stderr_bytes", sa.BigInteger(), nullable=False),
        sa.Column("output_capped", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_executions"),
        sa.UniqueConstraint("job_id", "scheduled_for", "attempt", name="uq_executions_slot"),
    )
    op.create_index("ix_executions_claim", "executions", ["state", "not_before"])
    op.create_index("ix_executions_history", "executions", ["job_id", "queued_at"])
    op.create_index("ix_executions_queued_at", "executions", ["queued_at", "id"])
    op.create_index(
        "ix_executions_running",
        "executions",
        ["node_id"],
        postgresql_where=sa.text("state = 'running'"),
        sqlite_where=sa.text("state = 'running'"),
    )

    op.create_table(
        "output_chunks",
        sa.Column("execution_id", sa.Uuid(), nullable=False),
        sa.Column("stream", sa.Text(), nullable=False),
        sa.Column("offset", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("execution_id", "stream", "offset", name="pk_output_chunks"),
    )
    op.create_index("ix_output_chunks_seq", "output_chunks", ["execution_id", "seq"])

    op.create_table(
        "nodes",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("tags", TAGS, nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=False),
        sa.Column("started_at", UTC_TS, nullable=False),
        sa.Column("heartbeat_at", UTC_TS, nullable=False),
        sa.Column("lease_expires_at", UTC_TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_nodes"),
    )
    op.create_index("ix_nodes_lease", "nodes", ["lease_expires_at"])

    op.create_table(
        "events",
        sa.Column("id", SERIAL, autoincrement=True, nullable=False),
        sa.Column("at", UTC_TS, nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("owner", sa.Text()),
        sa.Column("job_id", sa.Uuid()),
        sa.Column("execution_id", sa.Uuid()),
        sa.Column("message", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_events"),
    )


def downgrade() -> None:
    for table in ("events", "nodes", "output_chunks", "executions", "jobs"):
        op.drop_table(table)
