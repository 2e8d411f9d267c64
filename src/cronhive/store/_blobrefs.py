"""What the database knows of blobs: who may read which script, which runs' output is
archived (and where each chunk went), and which ended runs still wait for archiving.

Kept apart from sql.py: none of this is on the firing or claiming paths.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa

from cronhive.errors import NotFound
from cronhive.model import Event
from cronhive.store._core import ACTIVE, SqlBase, visible
from cronhive.store.base import ScriptRecord, Visibility
from cronhive.store.schema import executions, output_archives, output_chunks, scripts


class BlobOps(SqlBase):
    async def add_script(
        self,
        digest: str,
        *,
        owner: str,
        name: str,
        size: int,
        now: datetime,
        event: Event | None = None,
    ) -> None:
        values = {"digest": digest, "owner": owner, "name": name, "size": size, "created_at": now}
        async with self._write() as tx:
            await tx.run(
                self._insert(scripts).values(values).on_conflict_do_nothing()  # type: ignore[attr-defined]
            )
            await self._record(tx, event)

    async def find_script(self, digest: str, *, visible_to: Visibility) -> ScriptRecord:
        c = scripts.c
        found = await self._read(
            sa.select(scripts)
            .where(c.digest == digest, visible(c.owner, visible_to))
            .order_by(c.created_at)
            .limit(1)
        )
        if not found:
            raise NotFound(f"no script {digest}")
        row = found[0]
        return ScriptRecord(
            digest=row["digest"], owner=row["owner"], name=row["name"], size=row["size"]
        )

    async def archive_output(
        self, execution_id: UUID, *, manifest: dict[str, Any], now: datetime
    ) -> bool:
        # One transaction: a reader sees the chunks or the archive, never neither.
        async with self._write() as tx:
            won = await tx.run(
                self._insert(output_archives)  # type: ignore[attr-defined]
                .values(execution_id=execution_id, archived_at=now, manifest=manifest)
                .on_conflict_do_nothing()
                .returning(output_archives.c.execution_id)
            )
            if won.first() is None:
                return False
            await tx.run(output_chunks.delete().where(output_chunks.c.execution_id == execution_id))
            tx.note("output", str(execution_id))
        return True

    async def output_archive(self, execution_id: UUID) -> dict[str, Any] | None:
        found = await self._read(
            sa.select(output_archives.c.manifest).where(
                output_archives.c.execution_id == execution_id
            )
        )
        return dict(found[0]["manifest"]) if found else None

    async def unarchived_runs(
        self, *, finished_before: datetime, limit: int = 16
    ) -> Sequence[UUID]:
        # Bounded by the output still in the database (running runs and a backlog),
        # never by the history: archived runs have no chunks left.
        e, oc = executions.c, output_chunks.c
        with_chunks = sa.select(oc.execution_id).distinct().subquery()
        stmt = (
            sa.select(e.id)
            .join(with_chunks, with_chunks.c.execution_id == e.id)
            .where(e.state.not_in(ACTIVE), e.finished_at <= finished_before)
            .order_by(e.finished_at)
            .limit(limit)
        )
        return [r["id"] for r in await self._read(stmt)]
