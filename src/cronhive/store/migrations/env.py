"""Alembic environment, configured in code.

At run time `cronhive.store.open_store` hands in a live connection
(`config.attributes["connection"]`) inside its own transaction. For development
(`alembic revision --autogenerate`, see docs/store.md) a URL comes from `-x db=...`.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from cronhive.store.schema import metadata


def _run(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER much
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _main() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.get_x_argument(as_dictionary=True).get("db")
    if not url:
        raise SystemExit("pass the database to migrate: alembic -x db=sqlite:///dev.db ...")
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        _run(conn)
    engine.dispose()


_main()
