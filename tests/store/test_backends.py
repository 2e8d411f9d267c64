"""Backend specifics: opening URLs, SQLite's one node per file, migrations == metadata."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from storekit import ALICE, NOW, at, execution, spec

from cronhive.errors import Conflict, InvalidInput, StoreUnavailable
from cronhive.model import Execution, RunState
from cronhive.store import open_store
from cronhive.store.schema import metadata


@pytest.mark.parametrize(
    "url", ["", "mysql://x@y/z", "sqlite://", "sqlite:///:memory:", "http://example.com"]
)
async def test_a_url_it_cannot_use_is_invalid_input(url: str) -> None:
    with pytest.raises(InvalidInput) as info:
        await open_store(url)
    assert info.value.field == "db"


async def test_an_unreachable_database_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(StoreUnavailable, match=r"127\.0\.0\.1:1"):
        await open_store("postgresql://postgres@127.0.0.1:1/nope?connect_timeout=2")
    with pytest.raises(StoreUnavailable, match="missing"):
        await open_store(str(tmp_path / "missing" / "dir" / "x.db"))


async def test_sqlite_accepts_a_bare_path_and_reopens_migrated(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    store = await open_store(str(path))
    await store.enqueue(execution())
    await store.close()
    again = await open_store(f"sqlite:///{path}")
    assert again.url == f"sqlite:///{path}"  # type: ignore[attr-defined]
    assert len(await again.list_executions(visible_to=None)) == 1
    await again.close()


def _retry(_: Execution) -> Any:
    return at(5)


async def test_sqlite_refuses_a_second_live_node_and_lets_a_successor_reap(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'one.db'}"
    first, second = await open_store(url), await open_store(url)
    node = await first.register_node(name="alpha", tags=frozenset(), capacity=1, ttl=30, now=NOW)
    with pytest.raises(Conflict, match=r"in use by node alpha \(pid \d+ on .*one node per"):
        await second.register_node(name="beta", tags=frozenset(), capacity=1, ttl=30, now=NOW)
    await first.enqueue(execution())
    [run] = await first.claim(node.id, frozenset(), 1, NOW)
    # A crash: the process's lock goes with it (closing the store is the same to the OS).
    await first.close()
    successor = await second.register_node(
        name="beta", tags=frozenset(), capacity=1, ttl=30, now=at(1)
    )
    [lost] = await second.reap(now=at(1), retry=_retry)  # the predecessor's lease is over
    assert (lost.id, lost.state, lost.reason) == (run.id, RunState.LOST, "node alpha lease expired")
    assert [n.id for n in await second.list_nodes(now=at(1)) if n.alive(at(1))] == [successor.id]
    await second.deregister_node(successor.id, now=at(2))
    third = await open_store(url)
    await third.register_node(name="gamma", tags=frozenset(), capacity=1, ttl=30, now=at(3))
    await third.close()
    await second.close()


def _diff(url: str) -> list[Any]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff: list[Any] = compare_metadata(context, metadata)
    engine.dispose()
    return diff


async def test_migrated_sqlite_schema_equals_the_metadata(tmp_path: Path) -> None:
    store = await open_store(str(tmp_path / "m.db"))
    await store.close()
    assert _diff(f"sqlite:///{tmp_path / 'm.db'}") == []


@pytest.mark.postgres
async def test_migrated_postgres_schema_equals_the_metadata(pg_database: Any) -> None:
    url = pg_database(None)  # from zero, not from the template
    store = await open_store(url)
    await store.close()
    assert _diff(url.replace("postgresql://", "postgresql+psycopg://")) == []


async def test_sqlite_node_fenced_in_its_own_process_may_register_again(tmp_path: Path) -> None:
    """A node whose lease lapsed (a long pause) re-registers on the lock it still holds;
    while its lease is live, a second registration in the same process is refused."""
    store = await open_store(f"sqlite:///{tmp_path / 'one.db'}")
    node = await store.register_node(name="alpha", tags=frozenset(), capacity=1, ttl=5, now=NOW)
    with pytest.raises(Conflict, match="of this process"):
        await store.register_node(name="alpha", tags=frozenset(), capacity=1, ttl=5, now=at(1))
    again = await store.register_node(name="alpha", tags=frozenset(), capacity=1, ttl=5, now=at(10))
    assert again.id != node.id
    assert [n.id for n in await store.list_nodes(now=at(10)) if n.alive(at(10))] == [again.id]
    await store.close()


@pytest.mark.postgres
async def test_a_libpq_multi_host_url_finds_the_server_that_answers(pg_database: Any) -> None:
    """What failover set-ups hand out: the first host is down, the second serves."""
    url = pg_database(None)
    parts = urlsplit(url)
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))  # bound, never listening: connection refused
    hosts = f"127.0.0.1:{dead.getsockname()[1]},{parts.hostname}:{parts.port or 5432}"
    multi = urlunsplit(
        parts._replace(netloc=f"{parts.username}@{hosts}", query="target_session_attrs=read-write")
    )
    store = await open_store(multi)
    try:
        node = await store.register_node(name="m", tags=frozenset(), capacity=1, ttl=30, now=NOW)
        async with store.listen() as notes:
            await store.create_job(spec("m"), next_fire_at=None, created_by=ALICE, now=NOW)
            note = await asyncio.wait_for(anext(notes), 10)
        assert (note.topic, note.key) == ("jobs", "")
        assert [n.id for n in await store.list_nodes(now=NOW)] == [node.id]
    finally:
        await store.close()
        dead.close()
