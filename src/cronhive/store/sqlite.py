"""The embedded backend: one SQLite file, one node.

- WAL, synchronous=NORMAL, busy_timeout: readers never block the writer and a commit
  costs no fsync of the whole file.
- One writer connection whose transactions start with BEGIN IMMEDIATE (SQLAlchemy's
  documented recipe: the driver's own BEGIN is switched off), so firing, claiming and
  reaping are serialised by the database's write lock; reads use a separate pool.
- One node per file: `register_node` takes an exclusive `flock` on `<db>.lock`. The OS
  drops it when the process dies, so a restart is immediate; the dead predecessor's
  lease is expired at once so the next `reap` hands its runs on.
- Notifications are in-process (there is no other process to tell).
"""

from __future__ import annotations

import fcntl
import os
import socket
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.sql import ColumnElement
from sqlalchemy.sql.dml import Insert

from cronhive.errors import Conflict
from cronhive.model import Execution, Node
from cronhive.store._blobrefs import BlobOps
from cronhive.store._core import Tx
from cronhive.store._retention import RetentionOps
from cronhive.store._sessions import SessionOps
from cronhive.store._tokens import TokenOps
from cronhive.store.base import Notification
from cronhive.store.notify import hub_for
from cronhive.store.schema import executions, nodes
from cronhive.store.sql import SqlStore

_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=10000",
)


def _engine(path: str, *, writer: bool) -> AsyncEngine:
    engine = create_async_engine(
        f"sqlite+aiosqlite:///{path}",
        pool_size=1 if writer else 4,
        max_overflow=0,
        pool_timeout=60,
        # No ROLLBACK on every return to the pool (a thread hop each with aiosqlite):
        # writes always end their own transaction (`_write`) and the driver is in
        # autocommit mode, so a returned connection never holds one open.
        pool_reset_on_return=None,
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (below)
        cursor = dbapi_conn.cursor()
        for pragma in _PRAGMAS:
            cursor.execute(pragma)
        cursor.close()

    if writer:

        @event.listens_for(engine.sync_engine, "begin")
        def _on_begin(conn: sa.Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


class SqliteStore(SqlStore, TokenOps, BlobOps, RetentionOps, SessionOps):
    """The Store on one SQLite file (see the module docstring)."""

    def __init__(self, path: str) -> None:
        super().__init__(writer=_engine(path, writer=True), reader=_engine(path, writer=False))
        self.path = path
        self._hub = hub_for(os.path.realpath(path))
        self._lock_fd: int | None = None
        self._lock_holder = ""
        self._lock_node: UUID | None = None

    def _insert(self, table: sa.Table) -> Insert:
        return sqlite.insert(table)

    async def database_time(self) -> datetime:
        return datetime.now(UTC)  # one node: its clock is the database's

    async def _fence_claimed(self, tx: Tx, claimed: list[Execution]) -> list[Execution]:
        if not claimed:
            return claimed
        # One writer per file: max + 1 inside the write transaction is a sequence.
        top = (await tx.run(sa.select(sa.func.max(executions.c.fence)))).scalar() or 0
        fenced = [replace(ex, fence=top + i) for i, ex in enumerate(claimed, 1)]
        await tx.run(
            executions.update()
            .where(executions.c.id == sa.bindparam("b_id"))
            .values(fence=sa.bindparam("b_fence")),
            [{"b_id": ex.id, "b_fence": ex.fence} for ex in fenced],
        )
        return fenced

    def _tags_subset(self, column: sa.Column[Any], tags: frozenset[str]) -> ColumnElement[bool]:
        each = sa.func.json_each(column).table_valued("value")
        foreign = (
            sa.select(sa.literal(1)).select_from(each).where(each.c.value.not_in(sorted(tags)))
        )
        return ~foreign.exists()

    def _after_commit(self, tx: Tx) -> None:
        for topic, key in tx.notes:
            self._hub.publish(Notification(topic=topic, key=key))

    def listen(self) -> AbstractAsyncContextManager[AsyncIterator[Notification]]:
        return self._hub.subscribe()

    # --- one node per file -----------------------------------------------------------

    def _take_node_lock(self, name: str) -> None:
        lock_path = self.path + ".lock"
        if self._lock_fd is not None:
            raise Conflict(f"{self.path} is in use by node {self._lock_holder} of this process")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 512, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise Conflict(
                f"{self.path} is in use by node {holder}; SQLite serves one node per "
                "database file (use PostgreSQL to run several)"
            ) from None
        self._lock_holder = f"{name} (pid {os.getpid()} on {socket.gethostname()})"
        os.ftruncate(fd, 0)
        os.pwrite(fd, self._lock_holder.encode() + b"\n", 0)
        self._lock_fd = fd

    async def _release_node_lock(self) -> None:
        if self._lock_fd is not None:
            fd, self._lock_fd = self._lock_fd, None
            os.close(fd)  # closing drops the flock

    async def register_node(
        self, *, name: str, tags: frozenset[str], capacity: int, ttl: float, now: datetime
    ) -> Node:
        fresh = self._lock_fd is None
        if not fresh and await self._holder_alive(now):
            raise Conflict(f"{self.path} is in use by node {self._lock_holder} of this process")
        if fresh:
            self._take_node_lock(name)
        # else: this process's node was fenced (its lease lapsed) and registers anew.
        try:
            # Holding the lock proves every other node row is a dead predecessor: end its
            # lease now so the next reap marks its runs lost and queues their retries.
            async with self._write() as tx:
                await tx.run(
                    nodes.update()
                    .where(nodes.c.lease_expires_at > now)
                    .values(lease_expires_at=now)
                )
            node = await super().register_node(
                name=name, tags=tags, capacity=capacity, ttl=ttl, now=now
            )
        except BaseException:
            if fresh:
                await self._release_node_lock()
            raise
        self._lock_node = node.id
        return node

    async def _holder_alive(self, now: datetime) -> bool:
        if self._lock_node is None:
            return False
        rows = await self._read(
            sa.select(nodes.c.id).where(
                nodes.c.id == self._lock_node, nodes.c.lease_expires_at > now
            )
        )
        return bool(rows)
