"""blobs: stored scripts on jobs and runs, who may read them, archived output, retention

Revision ID: 0005
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_TS = sa.BigInteger().with_variant(postgresql.TIMESTAMP(timezone=True), "postgresql")
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    for table in ("jobs", "executions"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("script_digest", sa.Text()))
            batch.add_column(sa.Column("script_interpreter", JSON))
            batch.add_column(sa.Column("script_name", sa.Text()))
            batch.add_column(sa.Column("script_size", sa.BigInteger()))
    op.create_table(
        "scripts",
        sa.Column("digest", sa.Text(), nullable=False),
        sa.Column("owner", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("created_at", UTC_TS, nullable=False),
        sa.PrimaryKeyConstraint("digest", "owner", name="pk_scripts"),
    )
    op.create_table(
        "output_archives",
        sa.Column("execution_id", sa.Uuid(), nullable=False),
        sa.Column("archived_at", UTC_TS, nullable=False),
        sa.Column("manifest", JSON, nullable=False),
        sa.PrimaryKeyConstraint("execution_id", name="pk_output_archives"),
    )
    op.create_table(
        "maintenance",
        sa.Column("task", sa.Text(), nullable=False),
        sa.Column("node_id", sa.Uuid(), nullable=False),
        sa.Column("until", UTC_TS, nullable=False),
        sa.PrimaryKeyConstraint("task", name="pk_maintenance"),
    )


def downgrade() -> None:
    op.drop_table("maintenance")
    op.drop_table("output_archives")
    op.drop_table("scripts")
    for table in ("executions", "jobs"):
        with op.batch_alter_table(table) as batch:
            for column in ("script_size", "script_name", "script_interpreter", "script_digest"):
                batch.drop_column(column)
