"""A node older than its database's schema (a rolling upgrade under way, a downgrade)
refuses to start with one line saying so, and leaves the schema alone."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg
import pytest

from cronhive.errors import StoreError
from cronhive.store import open_store

SAID = "the database schema is at revision 9999, newer than this cronhive"


async def test_sqlite_schema_from_a_newer_cronhive(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cronhive.db'}"
    await (await open_store(url)).close()
    with sqlite3.connect(tmp_path / "cronhive.db") as db:
        db.execute("UPDATE alembic_version SET version_num = '9999'")
    with pytest.raises(StoreError, match=SAID):
        await open_store(url)
    with sqlite3.connect(tmp_path / "cronhive.db") as db:
        assert db.execute("SELECT version_num FROM alembic_version").fetchall() == [("9999",)]


@pytest.mark.postgres
async def test_postgres_schema_from_a_newer_cronhive(pg_url: str) -> None:
    await (await open_store(pg_url)).close()
    with psycopg.connect(pg_url, autocommit=True) as db:
        db.execute("UPDATE alembic_version SET version_num = '9999'")
    with pytest.raises(StoreError, match=SAID):
        await open_store(pg_url)


def test_the_numbered_head_is_alembics_head() -> None:
    # open_store skips Alembic when the schema is at this head: it must be the real one.
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from cronhive.store._open import MIGRATIONS, newest_revision

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert ScriptDirectory.from_config(config).get_heads() == [newest_revision()]
