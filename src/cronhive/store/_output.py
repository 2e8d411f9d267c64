"""Output chunks and events in SQL: append, read, record, list (see `Store`)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from uuid import UUID

import sqlalchemy as sa

from cronhive.errors import Fenced
from cronhive.model import Event, OutputChunk, Stream
from cronhive.store import _rows as rows
from cronhive.store._core import RUNNING, SqlBase, visible
from cronhive.store.base import Visibility
from cronhive.store.schema import events, executions, output_chunks


class OutputOps(SqlBase):
    """append_output, read_output, output_sizes, add_event, list_events."""

    # --- output ----------------------------------------------------------------------

    async def append_output(
        self, execution_id: UUID, *, node_id: UUID, chunks: Sequence[OutputChunk]
    ) -> None:
        c = executions.c
        mine = (
            sa.select(c.id)
            .where(c.id == execution_id, c.state == RUNNING, c.node_id == node_id)
            .with_for_update(read=True)  # a reaper waits until these bytes are in
        )
        async with self._write() as tx:
            if (await tx.run(mine)).first() is None:
                raise Fenced(f"run {execution_id} is not running on node {node_id}")
            if chunks:
                await tx.run(
                    self._insert(output_chunks).on_conflict_do_nothing(),  # type: ignore[attr-defined]
                    [rows.chunk_values(execution_id, ch) for ch in chunks],
                )
            tx.note("output", str(execution_id))

    async def read_output(
        self,
        execution_id: UUID,
        *,
        streams: Collection[Stream],
        after_seq: int = -1,
        limit: int = 256,
    ) -> list[OutputChunk]:
        c = output_chunks.c
        stmt = (
            sa.select(output_chunks)
            .where(
                c.execution_id == execution_id,
                c.stream.in_(sorted(str(s) for s in streams)),
                c.seq > after_seq,
            )
            .order_by(c.seq)
            .limit(limit)
        )
        return [rows.row_to_chunk(r) for r in await self._read(stmt)]

    # --- events ----------------------------------------------------------------------

    async def add_event(self, event: Event) -> None:
        async with self._write() as tx:
            await self._record(tx, event)

    async def list_events(
        self, *, visible_to: Visibility, after_id: int = 0, limit: int = 100
    ) -> list[Event]:
        stmt = (
            sa.select(events)
            .where(events.c.id > after_id, visible(events.c.owner, visible_to))
            .order_by(events.c.id)
            .limit(limit)
        )
        return [rows.row_to_event(r) for r in await self._read(stmt)]

    # --- operations ------------------------------------------------------------------

    async def output_sizes(self, execution_id: UUID) -> dict[Stream, int]:
        c = output_chunks.c
        stmt = (
            sa.select(c.stream, sa.func.max(c.offset + sa.func.length(c.data)).label("end"))
            .where(c.execution_id == execution_id)
            .group_by(c.stream)
        )
        return {Stream(r["stream"]): int(r["end"]) for r in await self._read(stmt)}
