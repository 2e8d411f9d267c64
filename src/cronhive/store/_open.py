"""`open_store`: a URL in, a migrated Store out."""

from __future__ import annotations

import os
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from cronhive.errors import CronhiveError, InvalidInput, StoreError, StoreUnavailable
from cronhive.store._errors import translate_error
from cronhive.store.base import Store
from cronhive.store.postgres import PostgresStore, SessionLimits
from cronhive.store.sql import SqlStore
from cronhive.store.sqlite import SqliteStore

MIGRATIONS = Path(__file__).parent / "migrations"
# pg_advisory_xact_lock key: nodes starting together migrate one after the other.
_MIGRATE_LOCK = 0x63726F6E68697665 & 0x7FFFFFFFFFFFFFFF  # "cronhive"


def _parse(url: str) -> str | URL:
    """A SQLite path or a PostgreSQL URL; raises InvalidInput for anything else."""
    if "://" not in url:
        if not url.strip():
            raise InvalidInput("database URL is empty", field="db")
        return url  # a bare filesystem path: SQLite
    if url.startswith("sqlite:///") and url != "sqlite:///" and ":memory:" not in url:
        return url.removeprefix("sqlite:///")
    if url.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
        try:
            parsed = make_url(_multi_host(url))
        except ArgumentError as exc:
            raise InvalidInput(f"bad database URL {url!r}: {exc}", field="db") from exc
        return parsed.set(drivername="postgresql+psycopg")
    shown = url.split("@")[-1] if "@" in url else url
    raise InvalidInput(
        f"unsupported database URL {shown!r}: use sqlite:///path/to.db, a file path, "
        "or postgresql://user@host/db",
        field="db",
    )


def _multi_host(url: str) -> str:
    """libpq's multi-host form (`postgresql://u@h1:5432,h2:5433/db?...`, what failover
    set-ups hand out) in SQLAlchemy's (`postgresql://u@/db?host=h1:5432&host=h2:5433`)."""
    scheme, _, rest = url.partition("://")
    netloc, _, tail = rest.partition("/")
    userinfo, at, hosts = netloc.rpartition("@")
    if "," not in hosts:
        return url
    path, question, query = tail.partition("?")
    pairs = "&".join(f"host={h}" for h in hosts.split(",") if h)
    return f"{scheme}://{userinfo}{at}/{path}?{pairs}{'&' + query if question else ''}"


def _check_directory(path: str) -> None:
    # Checked up front: a failed aiosqlite connect leaves its thread behind.
    parent = os.path.dirname(os.path.abspath(os.path.expanduser(path)))
    if not os.path.isdir(parent):
        raise StoreUnavailable(f"cannot open database {path}: no directory {parent}")


def newest_revision() -> str:
    """The head of the (linear, numbered) migration chain: `NNNN_name.py`, highest NNNN."""
    return max(p.name[:4] for p in (MIGRATIONS / "versions").glob("[0-9][0-9][0-9][0-9]_*.py"))


def _current_revision(connection: sa.Connection) -> str | None:
    if not sa.inspect(connection).has_table("alembic_version"):
        return None
    found = connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all()
    return found[0] if len(found) == 1 else None


def _upgrade(connection: sa.Connection) -> None:
    # A schema already at head (every start but the first after an upgrade) needs no
    # Alembic at all: it stays unimported, some 10 MB of the node's memory.
    if _current_revision(connection) == newest_revision():
        return
    from alembic import command
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from alembic.script.revision import ResolutionError
    from alembic.util.exc import CommandError

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    try:
        command.upgrade(config, "head")
    except CommandError as exc:
        if not isinstance(exc.__cause__ or exc.__context__, ResolutionError):
            raise
        # The schema was migrated by a newer cronhive (a rolling upgrade in progress, or
        # a downgrade): this node does not know that revision and must not touch it.
        current = MigrationContext.configure(connection).get_current_revision()
        head = ScriptDirectory.from_config(config).get_current_head()
        raise StoreError(
            f"the database schema is at revision {current}, newer than this cronhive "
            f"(which knows up to {head}): upgrade cronhive on this node (docs/cluster.md, "
            "Upgrading)"
        ) from exc


async def migrate(store: SqlStore) -> None:
    """Brings the schema to the newest revision, in one transaction."""
    async with store._writer.connect() as conn, conn.begin():
        if conn.dialect.name == "postgresql":
            await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_MIGRATE_LOCK)))
        await conn.run_sync(_upgrade)


async def open_store(url: str, *, limits: SessionLimits | None = None) -> Store:
    """Opens (and migrates to head) the database at `url`: `sqlite:///path/to.db`, a bare
    file path, or `postgresql://...`. `limits` sets PostgreSQL's session deadlines.
    Raises `InvalidInput` for a URL it cannot use and `StoreUnavailable` when the
    database cannot be reached or opened."""
    target = _parse(url)
    store: SqlStore
    if isinstance(target, URL):
        store = PostgresStore(target, limits=limits, conninfo=url.replace("+psycopg", ""))
        shown = target.set(drivername="postgresql").render_as_string(hide_password=True)
    else:
        _check_directory(target)
        store = SqliteStore(target)
        shown = target
    try:
        await migrate(store)
    except BaseException as exc:
        await store.close()
        error = translate_error(exc) if not isinstance(exc, CronhiveError) else exc
        if isinstance(error, StoreUnavailable):
            raise StoreUnavailable(f"cannot reach database {shown}: {error}") from exc
        if isinstance(exc, Exception):
            raise error from exc
        raise
    store.url = url
    return store
