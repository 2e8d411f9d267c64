"""A `Service` over a fresh store of each backend, and a way to kill its event inserts."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from cronhive.auth import DEFAULT_POLICY, Identity, Role
from cronhive.blobs.local import LocalBlobs
from cronhive.engine.clock import SystemClock
from cronhive.engine.hub import Hub
from cronhive.notify import Targets, Webhook
from cronhive.service import Service
from cronhive.store import open_store

# What each backend's trigger on `events` does to the transaction that inserts one.
KILLS = {
    "sqlite": ["CREATE TRIGGER kill_event BEFORE INSERT ON events "
               "BEGIN SELECT RAISE(ABORT, 'event insert killed'); END"],
    "postgres-raise": [
        "CREATE FUNCTION kill_event() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'event insert killed'; END $$",
        "CREATE TRIGGER kill_event BEFORE INSERT ON events "
        "FOR EACH ROW EXECUTE FUNCTION kill_event()",
    ],
    # The backend itself dies between the action and its event (a crash, a failover).
    "postgres-terminate": [
        "CREATE FUNCTION kill_event() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN PERFORM pg_terminate_backend(pg_backend_pid()); RETURN NEW; END $$",
        "CREATE TRIGGER kill_event BEFORE INSERT ON events "
        "FOR EACH ROW EXECUTE FUNCTION kill_event()",
    ],
}  # fmt: skip
HEAL = {
    "sqlite": ["DROP TRIGGER kill_event"],
    "postgres-raise": ["DROP TRIGGER kill_event ON events", "DROP FUNCTION kill_event()"],
    "postgres-terminate": ["DROP TRIGGER kill_event ON events", "DROP FUNCTION kill_event()"],
}

ADMIN = Identity(user="root", roles=frozenset({Role.ADMIN, Role.SCHEDULER}))
ALICE = Identity(user="alice", roles=frozenset({Role.SCHEDULER}))


@dataclass
class Backend:
    """A service on a fresh database, and SQL run on that database from outside."""

    kind: str
    url: str
    service: Service
    sql: Callable[[list[str]], None]

    def kill_events(self) -> None:
        self.sql(KILLS[self.kind])

    def heal(self) -> None:
        self.sql(HEAL[self.kind])


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgres-raise", marks=pytest.mark.postgres),
        pytest.param("postgres-terminate", marks=pytest.mark.postgres),
    ]
)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    kind = request.param
    if kind == "sqlite":
        path = tmp_path / "cronhive.db"
        url = f"sqlite:///{path}"

        def sql(statements: list[str]) -> None:
            with sqlite3.connect(path) as conn:
                for s in statements:
                    conn.execute(s)
    else:
        url = request.getfixturevalue("pg_database")(None)

        def sql(statements: list[str]) -> None:
            with psycopg.connect(url, autocommit=True) as conn:
                for s in statements:
                    conn.execute(s)

    store = await open_store(url)
    service = Service(
        store=store,
        clock=SystemClock(),
        hub=Hub(),
        policy=DEFAULT_POLICY,
        blobs=LocalBlobs(tmp_path / "blobs"),
        targets=Targets({"ops": Webhook(name="ops", url="http://127.0.0.1:9/", secret=b"s")}),
    )
    yield Backend(kind=kind, url=url, service=service, sql=sql)
    await store.close()
