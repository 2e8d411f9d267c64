"""Shared test ground: a fresh PostgreSQL database per test, or a skip that says how.

`CRONHIVE_TEST_PG` names a server (default postgres@127.0.0.1:5432, trust auth). With `CI`
set, an unreachable server fails the run: CI must never pass by skipping PostgreSQL.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

PG_ADMIN_URL = os.environ.get("CRONHIVE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def _with_db(url: str, dbname: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + dbname))


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    try:
        psycopg.connect(PG_ADMIN_URL, connect_timeout=3).close()
    except psycopg.Error as exc:
        msg = (
            f"PostgreSQL not reachable at {PG_ADMIN_URL} ({exc}); set CRONHIVE_TEST_PG "
            "to a server where user may create databases to run these tests"
        )
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return PG_ADMIN_URL


PgDatabaseFactory = Callable[[str | None], str]


@pytest.fixture
def pg_database(pg_admin_url: str) -> Iterator[PgDatabaseFactory]:
    """Creates fresh databases (optionally copied from a template) and drops them after."""
    created: list[str] = []

    def create(template: str | None = None) -> str:
        name = f"cronhive_t_{uuid.uuid4().hex[:12]}"
        tpl = f' TEMPLATE "{template}"' if template else ""
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"{tpl}')
        created.append(name)
        return _with_db(pg_admin_url, name)

    yield create
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        for name in created:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def pg_url_for(admin_url: str, dbname: str) -> str:
    """The URL of database `dbname` on the server of `admin_url`."""
    return _with_db(admin_url, dbname)
