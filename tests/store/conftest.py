"""One `store` fixture over both backends, plus builders for model objects.

PostgreSQL: a template database is migrated once per session and copied per test
(`pg_database(template)`), so every test starts from a fresh, migrated schema in
milliseconds instead of re-running the migrations.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from storekit import StoreFactory

from cronhive.store import Store, open_store

PgDatabaseFactory = Callable[[str | None], str]


def pg_url_for(admin_url: str, dbname: str) -> str:
    return urlunsplit(urlsplit(admin_url)._replace(path="/" + dbname))


@pytest.fixture(scope="session")
def pg_template(pg_admin_url: str) -> Iterator[str]:
    """A migrated database used as the template of every PostgreSQL test database."""
    name = f"cronhive_tpl_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    async def migrate() -> None:
        store = await open_store(pg_url_for(pg_admin_url, name))
        await store.close()  # disposes the pool: a template must have no sessions

    # Its own thread and loop: this may be first requested from inside a running loop.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, migrate()).result()
    yield name
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_url(pg_database: PgDatabaseFactory, pg_template: str) -> str:
    return pg_database(pg_template)


@pytest.fixture(params=["sqlite", "postgres"])
async def store_factory(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[StoreFactory]:
    """Opens stores on one fresh database of the parametrized backend; closes them after."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'cronhive.db'}"
    else:
        url = request.getfixturevalue("pg_url")
    opened: list[Store] = []

    async def factory() -> Store:
        store = await open_store(url)
        opened.append(store)
        return store

    yield factory
    for store in opened:
        await store.close()


@pytest.fixture
async def store(store_factory: StoreFactory) -> Store:
    return await store_factory()
