"""jobs.limits and executions.limits: a run's own resource limits; executions.limits_applied

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("limits", JSON))
    with op.batch_alter_table("executions") as batch:
        batch.add_column(sa.Column("limits", JSON))
        batch.add_column(sa.Column("limits_applied", sa.Text()))


def downgrade() -> None:
    with op.batch_alter_table("executions") as batch:
        batch.drop_column("limits_applied")
        batch.drop_column("limits")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("limits")
