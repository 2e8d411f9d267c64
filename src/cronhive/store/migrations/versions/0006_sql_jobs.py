"""sql jobs: RunSpec.sql on jobs and executions; job and run events on cronhive_events

Revision ID: 0006
Revises: 0003
Create Date: 2026-12-01

On PostgreSQL a trigger sends every job.* and run.* event row as JSON on the channel
`cronhive_events` (docs/sql-jobs.md): in the inserting transaction, so a listener hears
only committed events, whichever code path wrote them. Event rows hold no secrets.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

NOTIFY_FUNCTION = """
CREATE FUNCTION cronhive_events_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.kind LIKE 'job.%' OR NEW.kind LIKE 'run.%' THEN
    -- A NOTIFY payload must stay under 8000 bytes: the message is cut to 2000 characters.
    PERFORM pg_notify('cronhive_events', json_build_object(
      'id', NEW.id, 'at', NEW.at, 'kind', NEW.kind, 'owner', NEW.owner,
      'job_id', NEW.job_id, 'execution_id', NEW.execution_id,
      'message', left(NEW.message, 2000))::text);
  END IF;
  RETURN NULL;
END
$$
"""


def upgrade() -> None:
    for table in ("jobs", "executions"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("sql", JSON))
    if op.get_bind().dialect.name == "postgresql":
        op.execute(NOTIFY_FUNCTION)
        op.execute(
            "CREATE TRIGGER events_notify AFTER INSERT ON events "
            "FOR EACH ROW EXECUTE FUNCTION cronhive_events_notify()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER events_notify ON events")
        op.execute("DROP FUNCTION cronhive_events_notify()")
    for table in ("executions", "jobs"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("sql")
