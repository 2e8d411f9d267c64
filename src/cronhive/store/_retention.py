"""Retention: which ended runs are past the policy, deleting them (and their chunks and
archive records) and old events, in small batches; and the lease that lets one node at
a time do it. The blob objects are the caller's (engine.retention deletes them first).
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta
from uuid import UUID

import sqlalchemy as sa

from cronhive.store._core import ACTIVE, SqlBase
from cronhive.store.schema import events, executions, maintenance, output_archives, output_chunks


class RetentionOps(SqlBase):
    async def hold_task(self, task: str, *, node_id: UUID, ttl: float, now: datetime) -> bool:
        until = now + timedelta(seconds=ttl)
        m = maintenance.c
        async with self._write() as tx:
            took = await tx.run(
                self._insert(maintenance)  # type: ignore[attr-defined]
                .values(task=task, node_id=node_id, until=until)
                .on_conflict_do_nothing()
                .returning(m.task)
            )
            if took.first() is not None:
                return True
            held = await tx.run(
                maintenance.update()
                .where(m.task == task, sa.or_(m.until <= now, m.node_id == node_id))
                .values(node_id=node_id, until=until)
                .returning(m.task)
            )
            return held.first() is not None

    async def expired_runs(
        self, *, older_than: datetime, keep_per_job: int, limit: int
    ) -> list[UUID]:
        e = executions.c
        newer = executions.alias("newer").c
        # The latest run of each job stays, however old: `EXISTS` a newer one of its job.
        has_newer = (
            sa.select(newer.id)
            .where(
                newer.job_id == e.job_id,
                sa.tuple_(newer.queued_at, newer.id) > sa.tuple_(e.queued_at, e.id),
            )
            .exists()
        )
        by_age = (
            sa.select(e.id)
            .where(
                e.queued_at < older_than,
                e.state.not_in(ACTIVE),
                sa.or_(e.job_id.is_(None), has_newer),
            )
            .order_by(e.queued_at)
            .limit(limit)
        )
        found = [r["id"] for r in await self._read(by_age)]
        if len(found) >= limit:
            return found
        ranked = (
            sa.select(
                e.id,
                e.state,
                sa.func.row_number()
                .over(partition_by=e.job_id, order_by=(e.queued_at.desc(), e.id.desc()))
                .label("rank"),
            )
            .where(e.job_id.is_not(None))
            .subquery()
        )
        by_count = (
            sa.select(ranked.c.id)
            .where(ranked.c.rank > keep_per_job, ranked.c.state.not_in(ACTIVE))
            .limit(limit - len(found))
        )
        seen = set(found)
        found += [r["id"] for r in await self._read(by_count) if r["id"] not in seen]
        return found

    async def delete_runs(self, execution_ids: Collection[UUID]) -> int:
        ids = sorted(execution_ids)
        if not ids:
            return 0
        async with self._write() as tx:
            await tx.run(output_chunks.delete().where(output_chunks.c.execution_id.in_(ids)))
            await tx.run(output_archives.delete().where(output_archives.c.execution_id.in_(ids)))
            gone = await tx.run(
                executions.delete()
                .where(executions.c.id.in_(ids), executions.c.state.not_in(ACTIVE))
                .returning(executions.c.id)
            )
            return len(gone.all())

    async def delete_events(self, *, older_than: datetime, limit: int) -> int:
        # Oldest ids first: old events have the smallest ids, so the scan stops early.
        old = (
            sa.select(events.c.id)
            .where(events.c.at < older_than)
            .order_by(events.c.id)
            .limit(limit)
            .scalar_subquery()
        )
        async with self._write() as tx:
            gone = await tx.run(events.delete().where(events.c.id.in_(old)).returning(events.c.id))
            return len(gone.all())
