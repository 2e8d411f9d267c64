"""The service tests' kit: callers, a backend handle, and how to kill an event insert."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cronhive.auth import Identity, Role
from cronhive.service import Service

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
