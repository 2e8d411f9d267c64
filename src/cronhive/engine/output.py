"""Following a run's output from the database: what every node serves to any reader.

The runner's spool only exists on the node that ran the process; readers on any node
read the chunks that node shipped, and wake on its notifications (with a poll as a
backstop, since a notification is only a hint).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Collection
from uuid import UUID

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
) -> AsyncIterator[OutputChunk]:
    """The run's chunks after `after_seq`, in seq order; with `follow`, also those still
    to come, ending once the run is terminal and everything is read, or once `closing`
    is set (the caller tells the two apart). Raises `NotFound` if the run is not visible.

    The state is read *before* the output: the worker ships every byte before it records
    the end, so a terminal state read first means nothing can be missed after it.
    """
    last_seq = after_seq
    with (
        hub.subscribe("output", str(execution_id)) as output,
        hub.subscribe("events") as events,
    ):
        while True:
            output.clear()
            events.clear()
            state = (await store.get_execution(execution_id, visible_to=visible_to)).state
            while True:
                chunks = await store.read_output(
                    execution_id, streams=streams, after_seq=last_seq, limit=READ_BATCH
                )
                for chunk in chunks:
                    last_seq = chunk.seq
                    yield chunk
                if len(chunks) < READ_BATCH:
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
