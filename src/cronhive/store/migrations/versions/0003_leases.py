"""leases: fencing tokens, lost-attempt counts, nodes kept as down, quarantined jobs

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_TS = sa.BigInteger().with_variant(postgresql.TIMESTAMP(timezone=True), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("executions") as batch:
        batch.add_column(sa.Column("fence", sa.BigInteger()))
        batch.add_column(sa.Column("lost_total", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("lost_streak", sa.Integer(), nullable=False, server_default="0"))
    op.create_index("ix_executions_fence", "executions", ["fence"])
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("quarantine", sa.Text()))
    with op.batch_alter_table("nodes") as batch:
        batch.add_column(sa.Column("down_since", UTC_TS))
        batch.add_column(sa.Column("down_reason", sa.Text()))
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE SEQUENCE execution_fence")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP SEQUENCE execution_fence")
    with op.batch_alter_table("nodes") as batch:
        batch.drop_column("down_reason")
        batch.drop_column("down_since")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("quarantine")
    op.drop_index("ix_executions_fence", table_name="executions")
    with op.batch_alter_table("executions") as batch:
        batch.drop_column("lost_streak")
        batch.drop_column("lost_total")
        batch.drop_column("fence")
