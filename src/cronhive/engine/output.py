"""Following a run's output from the database: what every node serves to any reader.

The runner's spool only exists on the node that ran the process; readers on any node
read the chunks that node shipped, and wake on its notifications (with a poll as a
backstop, since a notification is only a hint).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Collection, Mapping
from uuid import UUID

from cronhive.blobs import BlobStore
from cronhive.blobs.archive import ArchivedOutput
from cronhive.engine.hub import Hub
from cronhive.model import OutputChunk, Stream
from cronhive.store.base import Store, Visibility

READ_BATCH = 256  # chunks per store read


async def follow_output(
    store: Store,
    hub: Hub,
    execution_id: UUID,
    *,
    visible_to: Visibility,
    streams: Collection[Stream],
    after_seq: int = -1,
    follow: bool = False,
    closing: asyncio.Event,
    poll: float,
    blobs: BlobStore | None = None,
    start: Mapping[Stream, int] | None = None,
) -> AsyncIterator[OutputChunk]:
    """The run's chunks after `after_seq`, in seq order; with `follow`, also those still
    to come, ending once the run is terminal and everything is read, or once `closing`
    is set (the caller tells the two apart). Raises `NotFound` if the run is not visible.

    The state is read *before* the output: the worker ships every byte before it records
    the end, so a terminal state read first means nothing can be missed after it.

    Archived output (cronhive.blobs.archive) is read from `blobs` with the same seqs: once
    the table runs short for an ended run, the archive record is checked (it is written
    in the transaction that deletes the chunks), and reading goes on there after the last
    seq read. `start` skips chunks that end before these byte offsets (an archive then
    fetches only the blocks from there on).
    """
    last_seq = after_seq
    archive: ArchivedOutput | None = None
    with (
        hub.subscribe("output", str(execution_id)) as output,
        hub.subscribe("events") as events,
    ):
        while True:
            output.clear()
            events.clear()
            state = (await store.get_execution(execution_id, visible_to=visible_to)).state
            while True:
                if archive is not None:
                    chunks = await archive.read(
                        streams=streams, after_seq=last_seq, limit=READ_BATCH, start=start
                    )
                else:
                    chunks = await store.read_output(
                        execution_id, streams=streams, after_seq=last_seq, limit=READ_BATCH
                    )
                for chunk in chunks:
                    last_seq = chunk.seq
                    if start is None or chunk.offset + len(chunk.data) > start.get(chunk.stream, 0):
                        yield chunk
                if len(chunks) == READ_BATCH:
                    continue
                if archive is None and state.terminal and blobs is not None:
                    manifest = await store.output_archive(execution_id)
                    if manifest is not None:
                        archive = ArchivedOutput(blobs, execution_id, manifest)
                        continue  # the rest (if any) is in the archive
                break
            if not follow or state.terminal or closing.is_set():
                return
            await wait_any([output, events, closing], poll)


async def wait_any(events: list[asyncio.Event], seconds: float) -> None:
    """Returns when any of `events` is set, or after `seconds`."""
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
