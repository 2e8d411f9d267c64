"""The cluster backend: any number of nodes on one PostgreSQL database.

- Firing, claiming and reaping lock rows with `FOR UPDATE SKIP LOCKED`, so concurrent
  nodes split the work instead of queueing behind each other; unique constraints stop
  a double insert whatever the locks.
- Notifications are `pg_notify` on one channel inside the writing transaction, so they
  are delivered on commit and never for a rolled-back change; `listen()` holds a
  dedicated autocommit psycopg connection.
- psycopg prepares statements it sees repeatedly, so the hot paths skip re-planning.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.sql import ColumnElement
from sqlalchemy.sql.dml import Insert

from cronhive.store._core import Tx
from cronhive.store._errors import translating
from cronhive.store._sessions import SessionOps
from cronhive.store._tokens import TokenOps
from cronhive.store.base import Notification
from cronhive.store.notify import CHANNEL, payload, pg_listen
from cronhive.store.schema import FENCE
from cronhive.store.sql import SqlStore

_NOTIFY_MANY = sa.text(
    "SELECT pg_notify(:channel, p) FROM unnest(CAST(:payloads AS text[])) AS p"
).bindparams(sa.bindparam("payloads", type_=postgresql.ARRAY(sa.Text())))


@dataclass(frozen=True, kw_only=True)
class SessionLimits:
    """Deadlines on every session, so that no call waits on the database for ever.

    `idle_in_transaction` is what frees the locks of a node that froze inside a
    transaction (SIGSTOP, a stuck loop): the server ends its session. The TCP settings
    make a connection whose packets vanish fail within seconds instead of minutes.
    """

    connect: float = 5.0
    statement: float = 30.0
    lock: float = 5.0
    idle_in_transaction: float = 5.0
    tcp_user_timeout: float = 5.0
    application_name: str = "cronhive"  # names the node's sessions in pg_stat_activity

    def connect_args(self) -> dict[str, Any]:
        options = (
            f"-c statement_timeout={_ms(self.statement)} -c lock_timeout={_ms(self.lock)} "
            f"-c idle_in_transaction_session_timeout={_ms(self.idle_in_transaction)}"
        )
        return {
            **self.transport(),
            "options": options,
            "application_name": self.application_name,
        }

    def transport(self) -> dict[str, Any]:
        return {
            "connect_timeout": max(1, round(self.connect)),
            "keepalives": 1,
            "keepalives_idle": 2,
            "keepalives_interval": 1,
            "keepalives_count": 3,
            "tcp_user_timeout": _ms(self.tcp_user_timeout),
            "application_name": self.application_name,
        }


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


class PostgresStore(SqlStore, TokenOps, SessionOps):
    """The Store on PostgreSQL (see the module docstring)."""

    def __init__(
        self,
        url: URL,
        *,
        pool_size: int = 5,
        limits: SessionLimits | None = None,
        conninfo: str | None = None,
    ) -> None:
        """`conninfo`: the URL as libpq takes it, for the LISTEN connection (a multi-host
        URL that SQLAlchemy needs rewritten works there as given)."""
        limits = limits or SessionLimits()

        def engine(size: int) -> AsyncEngine:
            return create_async_engine(
                url.set(drivername="postgresql+psycopg"),
                pool_size=size,
                max_overflow=size,
                pool_timeout=limits.connect + 5,
                pool_recycle=1800,
                connect_args=limits.connect_args(),
            )

        main = engine(pool_size)
        super().__init__(writer=main, reader=main, lease=engine(1))
        self._conninfo = conninfo or url.set(drivername="postgresql").render_as_string(
            hide_password=False
        )
        self._listen_args = limits.transport()

    async def database_time(self) -> datetime:
        found = await self._read(sa.select(sa.func.clock_timestamp().label("t")), self._lease)
        at: datetime = found[0]["t"]
        return at.astimezone(UTC)

    def _insert(self, table: sa.Table) -> Insert:
        return postgresql.insert(table)

    def _fence_value(self) -> dict[str, Any]:
        return {"fence": FENCE.next_value()}

    def _tags_subset(self, column: sa.Column[Any], tags: frozenset[str]) -> ColumnElement[bool]:
        mine = sa.bindparam(None, sorted(tags), type_=postgresql.ARRAY(sa.Text()))
        return column.op("<@", is_comparison=True)(mine)

    async def _send_notes(self, tx: Tx) -> None:
        await tx.run(
            _NOTIFY_MANY,
            {"channel": CHANNEL, "payloads": [payload(t, k) for t, k in tx.notes]},
        )

    async def notify(self, topic: str, key: str = "") -> None:
        with translating():
            async with self._writer.begin() as conn:
                await conn.execute(sa.select(sa.func.pg_notify(CHANNEL, payload(topic, key))))

    def listen(self) -> AbstractAsyncContextManager[AsyncIterator[Notification]]:
        return pg_listen(self._conninfo, **self._listen_args)
