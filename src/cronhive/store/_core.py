"""The transaction plumbing and backend hooks under every SQL store operation."""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql import ColumnElement
from sqlalchemy.sql.dml import Insert

from cronhive.model import Event, Execution, RunState
from cronhive.store import _rows as rows
from cronhive.store._errors import translating
from cronhive.store.base import Finish, RetryDecider, Store, Visibility
from cronhive.store.schema import events, executions, jobs

QUEUED = str(RunState.QUEUED)
RUNNING = str(RunState.RUNNING)
ACTIVE = (QUEUED, RUNNING)
FAILURES = (str(RunState.FAILED), str(RunState.TIMED_OUT), str(RunState.LOST))


@dataclass(eq=False)
class Tx:
    """One write transaction and the notifications to send once it commits."""

    conn: AsyncConnection
    notes: dict[tuple[str, str], None] = field(default_factory=dict)
    # Job rows this transaction already holds `FOR UPDATE` (one ordered lock serves all).
    locked_jobs: set[UUID] = field(default_factory=set)

    def note(self, topic: str, key: str = "") -> None:
        self.notes[(topic, key)] = None

    async def run(self, stmt: sa.Executable, params: Any = None) -> sa.CursorResult[Any]:
        return await self.conn.execute(stmt, params)


def visible(column: sa.ColumnElement[str | None], visible_to: Visibility) -> ColumnElement[bool]:
    """The row filter for a caller who may see `visible_to` (None: everything)."""
    if visible_to is None:
        return sa.true()
    return column.in_(sorted(visible_to))


def retry_of(ex: Execution, not_before: datetime, now: datetime) -> Execution:
    """The next attempt of `ex`: a new row, same slot (history is append-only)."""
    lost = 1 if ex.state is RunState.LOST else 0
    return Execution(
        id=uuid4(),
        job_id=ex.job_id,
        job_name=ex.job_name,
        owner=ex.owner,
        run=ex.run,
        retry=ex.retry,
        scheduled_for=ex.scheduled_for,
        attempt=ex.attempt + 1,
        # Never before the slot: an attempt given up while armed ahead of it.
        not_before=max(not_before, ex.scheduled_for),
        queued_at=now,
        lost_total=ex.lost_total + lost,
        lost_streak=(ex.lost_streak + 1) if lost else 0,
    )


def job_order(ex: Execution) -> str:
    """The one order in which a transaction locks several job rows (see _nodes.reap)."""
    return str(ex.job_id)


@dataclass(frozen=True, kw_only=True, slots=True)
class Tally:
    """What the runs of one job that ended together add to the job's row."""

    job_id: UUID
    successes: int
    failures: int
    last_run_at: datetime | None
    last_state: str


def tallies(ended: Iterable[Execution]) -> list[Tally]:
    """One per job, in `job_order` (the lock order); the last run of a job in `ended`
    is its last run."""
    by_job: dict[UUID, list[Execution]] = {}
    for ex in sorted((e for e in ended if e.job_id is not None), key=job_order):
        assert ex.job_id is not None
        by_job.setdefault(ex.job_id, []).append(ex)
    return [
        Tally(
            job_id=job_id,
            successes=sum(ex.state is RunState.SUCCEEDED for ex in runs),
            failures=sum(str(ex.state) in FAILURES for ex in runs),
            last_run_at=runs[-1].started_at or runs[-1].finished_at,
            last_state=str(runs[-1].state),
        )
        for job_id, runs in by_job.items()
    ]


def job_tally(t: Tally) -> sa.Update:
    """The job's counters and last run after its runs in `t` ended."""
    return (
        jobs.update()
        .where(jobs.c.id == t.job_id)
        .values(
            success_count=jobs.c.success_count + t.successes,
            failure_count=jobs.c.failure_count + t.failures,
            last_run_at=t.last_run_at,
            last_state=t.last_state,
        )
    )


class SqlBase(Store):
    """Engines, transactions and the hooks a backend fills in."""

    url: str = ""  # what open_store was given (a node hands it to its children)

    def __init__(
        self, *, writer: AsyncEngine, reader: AsyncEngine, lease: AsyncEngine | None = None
    ) -> None:
        self._writer = writer
        self._reader = reader
        # Lease renewal and the clock never queue behind the node's other work for a
        # connection: a busy pool must not cost the node its lease.
        self._lease = lease or writer
        # Prepared claim statements by (tags, id(caps)), with the caps they were built for.
        self._claim_cache: dict[tuple[frozenset[str], int], tuple[Any, Any]] = {}

    # --- backend hooks ---------------------------------------------------------------

    @abc.abstractmethod
    def _insert(self, table: sa.Table) -> Insert:
        """A dialect INSERT offering `on_conflict_do_nothing()`."""

    @abc.abstractmethod
    def _tags_subset(self, column: sa.Column[Any], tags: frozenset[str]) -> ColumnElement[bool]:
        """SQL for: every tag in `column` is in `tags` (empty column: true)."""

    async def _send_notes(self, tx: Tx) -> None:
        """Sends `tx.notes` inside the transaction (delivered on commit), if the backend can."""

    def _after_commit(self, tx: Tx) -> None:
        """Delivers `tx.notes` after commit, if the backend cannot do it in the transaction."""

    def _fence_value(self) -> dict[str, Any]:
        """Column values that give each claimed row its fencing token in the claim's
        UPDATE itself, if the backend can (a sequence); else `_fence_claimed` does."""
        return {}

    async def _fence_claimed(self, tx: Tx, claimed: list[Execution]) -> list[Execution]:
        """Gives fencing tokens to rows `_fence_value` left without one."""
        return claimed

    async def _release_node_lock(self) -> None:
        """Lets another node use the database (SQLite's one-node lock)."""

    # --- transactions ----------------------------------------------------------------

    @asynccontextmanager
    async def _write(self, engine: AsyncEngine | None = None) -> AsyncIterator[Tx]:
        with translating():
            async with (engine or self._writer).connect() as conn:
                tx = Tx(conn)
                async with conn.begin():
                    yield tx
                    if tx.notes:
                        await self._send_notes(tx)
            if tx.notes:
                self._after_commit(tx)

    async def _read(
        self, stmt: sa.Executable, engine: AsyncEngine | None = None
    ) -> Sequence[RowMapping]:
        with translating():
            async with (engine or self._reader).connect() as conn:
                return (await conn.execute(stmt)).mappings().all()

    async def close(self) -> None:
        await self._release_node_lock()
        for engine in dict.fromkeys((self._writer, self._reader, self._lease)):
            await engine.dispose()

    async def _record(self, tx: Tx, event: Event | None) -> None:
        """Records the event of the action `tx` carries, in its transaction: both commit
        or neither does (a failed insert rolls the action back)."""
        if event is None:
            return
        await tx.run(events.insert().values(rows.event_values(event)))
        tx.note("events")

    async def _end_runs(
        self,
        tx: Tx,
        finishes: Sequence[Finish],
        node_id: UUID,
        retry: RetryDecider,
        *,
        settle: bool = True,
    ) -> list[tuple[Execution, Execution | None] | None]:
        """`finish_many` inside `tx` (the reaper records vouched-for ends with it).
        `settle=False` leaves the outbox and the job counters to the caller, which must
        lock all its job rows in one ordered pass."""
        raise NotImplementedError

    async def _tally(self, tx: Tx, ended: Iterable[Execution]) -> None:
        """Adds runs that ended to their jobs' counters: one row at a time, in the lock
        order, so two writers wait for each other, never deadlock. Last in a
        transaction, so the job rows (which firing also locks) are held briefly."""
        for t in tallies(ended):
            await tx.run(job_tally(t))

    async def _queue_retry(
        self, tx: Tx, ex: Execution, retry: RetryDecider, now: datetime
    ) -> Execution | None:
        at = retry(ex)
        if at is None:
            return None
        nxt = retry_of(ex, at, now)
        stmt = (
            self._insert(executions)
            .values(rows.execution_values(nxt))
            .on_conflict_do_nothing()  # type: ignore[attr-defined]
            .returning(executions.c.id)
        )
        if (await tx.run(stmt)).first() is None:
            return None  # another writer queued this attempt already
        tx.note("runs")
        return nxt
