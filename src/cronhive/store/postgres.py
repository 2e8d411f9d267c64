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
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.sql import ColumnElement
from sqlalchemy.sql.dml import Insert

from cronhive.store._core import Tx
from cronhive.store._errors import translating
from cronhive.store._tokens import TokenOps
from cronhive.store.base import Notification
from cronhive.store.notify import CHANNEL, payload, pg_listen
from cronhive.store.schema import FENCE
from cronhive.store.sql import SqlStore

_NOTIFY_MANY = sa.text(
    "SELECT pg_notify(:channel, p) FROM unnest(CAST(:payloads AS text[])) AS p"
).bindparams(sa.bindparam("payloads", type_=postgresql.ARRAY(sa.Text())))


class PostgresStore(SqlStore, TokenOps):
    """The Store on PostgreSQL (see the module docstring)."""

    def __init__(self, url: URL, *, pool_size: int = 5) -> None:
        engine = create_async_engine(
            url.set(drivername="postgresql+psycopg"),
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_timeout=30,
            pool_recycle=1800,
        )
        super().__init__(writer=engine, reader=engine)
        self._conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)

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
        return pg_listen(self._conninfo)
