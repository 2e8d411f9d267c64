"""tokens: personal access tokens for the web UI and its JSON API

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of cronhive.store._types, so this revision never changes under us.
UTC_TS = sa.BigInteger().with_variant(postgresql.TIMESTAMP(timezone=True), "postgresql")
TAGS = sa.JSON().with_variant(postgresql.ARRAY(sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "tokens",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user", sa.Text(), nullable=False),
        sa.Column("groups", TAGS, nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("hash", sa.Text(), nullable=False),
        sa.Column("created_at", UTC_TS, nullable=False),
        sa.Column("expires_at", UTC_TS),
        sa.Column("last_used_at", UTC_TS),
        sa.Column("revoked_at", UTC_TS),
        sa.PrimaryKeyConstraint("id", name="pk_tokens"),
    )
    op.create_index(
        "uq_tokens_live_name",
        "tokens",
        ["user", "name"],
        unique=True,
        postgresql_where=sa.text("revoked_at IS NULL"),
        sqlite_where=sa.text("revoked_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("uq_tokens_live_name", table_name="tokens")
    op.drop_table("tokens")
