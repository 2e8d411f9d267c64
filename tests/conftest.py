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


# Folders whose tests look at every process on the host (by CRONHIVE_RUN_ID, which the
# runner also kills by) or start PostgreSQL clusters: one worker runs each of them whole.
_ONE_WORKER = frozenset({"runner", "security", "chaos"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Groups for pytest-xdist's `--dist loadgroup` (scripts/test): a folder above, else
    a module (its module-scoped nodes and browsers start once)."""
    for item in items:
        path = item.nodeid.split("::", 1)[0]
        parts = path.split("/")
        folder = parts[1] if len(parts) > 2 and parts[0] == "tests" else ""
        group = folder if folder in _ONE_WORKER else path
        item.add_marker(pytest.mark.xdist_group(group))
