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

from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.sql import ColumnElement
from sqlalchemy.sql.dml import Insert

from cronhive.model import Execution, RunState
from cronhive.store._blobrefs import BlobOps
from cronhive.store._core import RUNNING, Tally, Tx, tallies
from cronhive.store._retention import RetentionOps
from cronhive.store._sessions import SessionOps
from cronhive.store._tokens import TokenOps
from cronhive.store.base import Finish, Notification
from cronhive.store.notify import CHANNEL, payload, pg_listen
from cronhive.store.schema import FENCE, executions, jobs
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


def _ends_stmt(finishes: Sequence[Finish], node_id: UUID) -> Any:
    """The fenced UPDATE of every end in one statement (UPDATE ... FROM VALUES): each
    end recorded only if its run is still running on `node_id`."""
    c = executions.c
    ends = sa.values(
        sa.column("id", c.id.type),
        sa.column("state", c.state.type),
        sa.column("exit_code", c.exit_code.type),
        sa.column("signal", c.signal.type),
        sa.column("reason", c.reason.type),
        sa.column("keep_reason", sa.Boolean()),
        sa.column("finished_at", c.finished_at.type),
        sa.column("stdout_bytes", c.stdout_bytes.type),
        sa.column("stderr_bytes", c.stderr_bytes.type),
        sa.column("output_capped", c.output_capped.type),
        sa.column("limits_applied", c.limits_applied.type),
        name="ends",
    ).data(
        [
            (
                f.execution_id,
                str(o.state),
                o.exit_code,
                o.signal,
                o.reason,
                o.state is RunState.STOPPED,  # a stop's own reason wins (see _finish_stmt)
                o.finished_at,
                o.stdout_bytes,
                o.stderr_bytes,
                o.output_capped,
                o.limits_applied,
            )
            for f in finishes
            for o in (f.outcome,)
        ]
    )
    e = ends.c

    def typed(name: str) -> Any:
        # A column of NULLs in VALUES is text to PostgreSQL: say what it is.
        return sa.cast(e[name], c[name].type)

    # The rows are locked in id order first, inside this one statement, as the reaper
    # takes them: two writers of one node's run rows wait for each other, never deadlock.
    ordered = (
        sa.select(c.id)
        .where(
            c.id.in_([f.execution_id for f in finishes]), c.state == RUNNING, c.node_id == node_id
        )
        .order_by(c.id)
        .with_for_update()
    )
    return (
        executions.update()
        .where(c.id == typed("id"), c.id.in_(ordered), c.state == RUNNING, c.node_id == node_id)
        .values(
            state=typed("state"),
            exit_code=typed("exit_code"),
            signal=typed("signal"),
            reason=sa.case(
                (e.keep_reason, sa.func.coalesce(c.reason, typed("reason"))),
                else_=typed("reason"),
            ),
            finished_at=typed("finished_at"),
            stdout_bytes=typed("stdout_bytes"),
            stderr_bytes=typed("stderr_bytes"),
            output_capped=typed("output_capped"),
            limits_applied=typed("limits_applied"),
        )
        .returning(*executions.c)
    )


def _tally_stmt(found: Sequence[Tally]) -> Any:
    c = jobs.c
    adds = sa.values(
        sa.column("id", c.id.type),
        sa.column("successes", sa.Integer()),
        sa.column("failures", sa.Integer()),
        sa.column("last_run_at", c.last_run_at.type),
        sa.column("last_state", c.last_state.type),
        name="adds",
    ).data([(t.job_id, t.successes, t.failures, t.last_run_at, t.last_state) for t in found])
    a = adds.c
    return (
        jobs.update()
        .where(c.id == sa.cast(a.id, c.id.type))
        .values(
            success_count=c.success_count + sa.cast(a.successes, sa.Integer()),
            failure_count=c.failure_count + sa.cast(a.failures, sa.Integer()),
            last_run_at=sa.cast(a.last_run_at, c.last_run_at.type),
            last_state=sa.cast(a.last_state, c.last_state.type),
        )
    )


class PostgresStore(SqlStore, TokenOps, BlobOps, RetentionOps, SessionOps):
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

    async def _record_ends(
        self, tx: Tx, finishes: Sequence[Finish], node_id: UUID
    ) -> dict[UUID, Any]:
        # One round trip for the batch, not one per run.
        unique = list({f.execution_id: f for f in reversed(finishes)}.values())[::-1]
        found = await tx.run(_ends_stmt(unique, node_id))
        return {row["id"]: row for row in found.mappings()}

    async def _tally(self, tx: Tx, ended: Iterable[Execution]) -> None:
        ended = list(ended)
        found = tallies(ended)
        if len(found) < 2:
            await super()._tally(tx, ended)
            return
        ids = [t.job_id for t in found]
        # Lock in the one order first (see SqlBase._tally), then one UPDATE for all; the
        # outbox step before it usually holds them already.
        if not set(ids) <= tx.locked_jobs:
            await tx.run(
                sa.select(jobs.c.id).where(jobs.c.id.in_(ids)).order_by(jobs.c.id).with_for_update()
            )
        await tx.run(_tally_stmt(found))

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

    def listen(self) -> AbstractAsyncContextManager[AsyncIterator[Notification]]:
        return pg_listen(self._conninfo, **self._listen_args)
