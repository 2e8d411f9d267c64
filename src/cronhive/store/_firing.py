"""The scheduler's side of the store: a tick's locked batch, and stopping a run.

Split from sql.py to keep modules readable; `SqlStore.firing` hands out `SqlBatch`.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

import sqlalchemy as sa

from cronhive.model import Event, Execution, Job, RunState
from cronhive.store import _rows as rows
from cronhive.store._core import ACTIVE, QUEUED, RUNNING, Tx, visible
from cronhive.store._outbox import react_missed
from cronhive.store.base import FiringBatch, RunCaps, Visibility
from cronhive.store.schema import events, executions, jobs

if TYPE_CHECKING:
    from cronhive.store.sql import SqlStore


def _stop_stmt(execution_id: UUID, visible_to: Visibility, reason: str, now: datetime) -> Any:
    """One statement for request_stop: queued -> stopped, running -> stop_requested,
    terminal -> unchanged; RETURNING the row (none: missing or invisible)."""
    c = executions.c
    is_queued = c.state == QUEUED
    return (
        executions.update()
        .where(c.id == execution_id, visible(c.owner, visible_to))
        .values(
            state=sa.case((is_queued, str(RunState.STOPPED)), else_=c.state),
            # A running run keeps the first reason it was asked to stop for; its node's
            # finish reports it (the node itself does not know why).
            reason=sa.case(
                (is_queued, reason),
                ((c.state == RUNNING) & ~c.stop_requested, reason),
                else_=c.reason,
            ),
            finished_at=sa.case(
                (is_queued, sa.literal(now, c.finished_at.type)), else_=c.finished_at
            ),
            stop_requested=sa.case((c.state == RUNNING, sa.true()), else_=c.stop_requested),
        )
        .returning(*executions.c)
    )


_INSERT_CHUNK = 200
_ADVANCE = (
    jobs.update()
    .where(jobs.c.id == sa.bindparam("b_id"))
    .values(next_fire_at=sa.bindparam("b_at", type_=jobs.c.next_fire_at.type))
)


async def stop(
    tx: Tx, execution_id: UUID, visible_to: Visibility, reason: str, now: datetime
) -> Execution | None:
    row = (await tx.run(_stop_stmt(execution_id, visible_to, reason, now))).mappings().first()
    if row is None:
        return None
    ex = rows.row_to_execution(row)
    if ex.state is RunState.RUNNING:
        tx.note("stop", str(ex.id))
    elif ex.state is RunState.STOPPED and ex.finished_at == now:
        tx.note("output", str(ex.id))  # followers of a queued run learn it ended
    return ex


class SqlBatch(FiringBatch):
    """A scheduler tick's transaction: see `FiringBatch` for the contract."""

    def __init__(self, store: SqlStore, tx: Tx, now: datetime, due: list[Job]) -> None:
        self.jobs = due
        self._store = store
        self._tx = tx
        self._now = now
        self.unclaimed: set[UUID] = set()

    async def active_runs(self, job_ids: Collection[UUID]) -> dict[UUID, list[Execution]]:
        found: dict[UUID, list[Execution]] = {job_id: [] for job_id in job_ids}
        if not found:
            return found
        c = executions.c
        stmt = (
            sa.select(executions)
            .where(c.job_id.in_(list(found)), c.state.in_(ACTIVE))
            .order_by(c.queued_at)
        )
        for row in (await self._tx.run(stmt)).mappings():
            ex = rows.row_to_execution(row)
            found[ex.job_id].append(ex)  # type: ignore[index]
        return found

    async def insert_many(self, executions_: Sequence[Execution]) -> set[UUID]:
        inserted: set[UUID] = set()
        for start in range(0, len(executions_), _INSERT_CHUNK):
            chunk = executions_[start : start + _INSERT_CHUNK]
            stmt = (
                self._store._insert(executions)
                .values([rows.execution_values(e) for e in chunk])
                .on_conflict_do_nothing()  # type: ignore[attr-defined]
                .returning(executions.c.id)
            )
            inserted.update(r[0] for r in await self._tx.run(stmt))
        self.unclaimed.update(
            e.id for e in executions_ if e.id in inserted and e.state is RunState.QUEUED
        )
        await self._missed([e for e in executions_ if e.id in inserted])
        return inserted

    async def _missed(self, inserted: Sequence[Execution]) -> None:
        """`missed` notifications of the skipped slots just recorded, in this tick."""
        skipped = [e for e in inserted if e.state is RunState.SKIPPED]
        if skipped:
            own = {j.id: j for j in self.jobs}
            await react_missed(self._store, self._tx, skipped, own, self._now)

    async def advance_many(self, moves: Sequence[tuple[UUID, datetime | None]]) -> None:
        if moves:
            await self._tx.run(_ADVANCE, [{"b_id": i, "b_at": at} for i, at in moves])

    async def request_stop(self, execution_id: UUID, reason: str) -> None:
        await stop(self._tx, execution_id, None, reason, self._now)

    async def quarantine(self, job: Job, reason: str) -> None:
        await self._tx.run(
            jobs.update().where(jobs.c.id == job.id).values(quarantine=reason, next_fire_at=None)
        )
        event = Event(
            id=0,
            at=self._now,
            kind="job.quarantined",
            owner=job.owner,
            job_id=job.id,
            message=f"set aside, fires no more until changed: {reason}",
        )
        await self._tx.run(events.insert().values(rows.event_values(event)))
        self._tx.note("events")
        self._tx.note("jobs")

    async def claim(
        self,
        execution_ids: Collection[UUID],
        node_id: UUID,
        now: datetime,
        *,
        caps: RunCaps | None = None,
    ) -> list[Execution]:
        if not execution_ids:
            return []
        pick = list(execution_ids)
        if caps is not None:
            pick = await self._within_caps(pick, caps)
        claimed = await self._store._claim(self._tx, pick, node_id, now)
        self.unclaimed.difference_update(ex.id for ex in claimed)
        return claimed

    async def _within_caps(self, ids: list[UUID], caps: RunCaps) -> list[UUID]:
        """The ids whose owners have room under their caps, in order. No ranking: these
        runs were just fired and the node has room for them now (a claim elsewhere would
        take them at once anyway); only the caps must hold. Cheap on every tick: one row
        per id, each counting its owner's running runs off the claim index."""
        c, busy = executions.c, executions.alias("busy").c
        running = (
            sa.select(sa.func.count())
            .where(busy.state == RUNNING, busy.owner == c.owner)
            .scalar_subquery()
        )
        found = await self._tx.run(
            sa.select(c.id, c.owner, running.label("n")).where(c.id.in_(ids))
        )
        seen = {r.id: (r.owner, int(r.n)) for r in found}
        taken: dict[str, int] = {}
        out = []
        for i in ids:
            if i not in seen:
                continue
            owner, n = seen[i]
            cap = caps.cap_of(owner)
            if cap is None or n + taken.get(owner, 0) < cap:
                taken[owner] = taken.get(owner, 0) + 1
                out.append(i)
        return out
