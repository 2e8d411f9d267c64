"""Ships a run's output from the runner into the store, in batches, within a cap.

Batches go out when they reach `batch_bytes` or `interval` after their first chunk,
whichever comes first, so a live reader on another node lags by about `interval`. Past
`cap` bytes (both streams together) nothing more is stored and the run is marked capped;
the node's spool file still holds everything.

Nothing is dropped on a database failure: the batch is kept and the timer re-armed
(with backoff). When the output is complete, what is still pending goes into the
transaction that records the run's end (`tail()`, `Finish.chunks`; the finisher retries
that until it is stored), so a short run costs one write, and a reader that sees a
terminal state and then reads the chunks has every byte.
"""

from __future__ import annotations

import asyncio
import logging
from uuid import UUID

from cronhive import runner
from cronhive.errors import CronhiveError, Fenced
from cronhive.model import OutputChunk, Stream
from cronhive.store import Store

log = logging.getLogger(__name__)

RETRY_FIRST, RETRY_MAX = 0.1, 2.0  # seconds between attempts to store a failed batch


class OutputShipper:
    """An `OutputSink` for one run. Not thread-safe; the runner calls it sequentially."""

    def __init__(
        self,
        store: Store,
        execution_id: UUID,
        node_id: UUID,
        *,
        cap: int,
        batch_bytes: int = 256 * 1024,
        interval: float = 0.1,
    ) -> None:
        self._store = store
        self._execution_id = execution_id
        self._node_id = node_id
        self._cap = cap
        self._batch_bytes = batch_bytes
        self._interval = interval
        self._pending: list[OutputChunk] = []
        self._pending_bytes = 0
        self._stored = 0
        self._timer: asyncio.TimerHandle | None = None
        self._flushing: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._backoff = RETRY_FIRST
        self._closing = False
        self.capped = False
        self.fenced = False

    async def write(self, chunk: runner.Chunk) -> None:
        if self.capped or self.fenced:
            return
        data = chunk.data
        room = self._cap - self._stored - self._pending_bytes
        if len(data) > room:
            data, self.capped = data[: max(room, 0)], True
        if data:
            self._pending.append(
                OutputChunk(
                    execution_id=self._execution_id,
                    stream=Stream(chunk.stream),
                    offset=chunk.offset,
                    seq=chunk.seq,
                    data=data,
                )
            )
            self._pending_bytes += len(data)
        if self._pending_bytes >= self._batch_bytes or self.capped:
            await self.flush()
        elif self._pending and self._timer is None:
            self._arm(self._interval)

    def _arm(self, delay: float) -> None:
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(delay, self._flush_soon)

    def _flush_soon(self) -> None:
        self._timer = None
        self._flushing = asyncio.ensure_future(self.flush())

    async def flush(self) -> None:
        async with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            batch, self._pending, self._pending_bytes = self._pending, [], 0
            if not batch or self.fenced:
                return
            try:
                await self._store.append_output(
                    self._execution_id, node_id=self._node_id, chunks=batch
                )
                self._stored += sum(len(c.data) for c in batch)
                self._backoff = RETRY_FIRST
            except Fenced:
                # The run was given away: stop shipping; the node is stopping it.
                self.fenced = True
            except CronhiveError as exc:
                # Output must not be dropped: keep the batch and try again soon (no later
                # write may come to trigger it: a live reader would stall).
                if self._backoff == RETRY_FIRST:
                    log.warning(
                        "shipping output of %s failed (%s); retrying", self._execution_id, exc
                    )
                self._pending[:0] = batch
                self._pending_bytes += sum(len(c.data) for c in batch)
                if self._timer is None and not self._closing:  # close() retries itself
                    self._arm(self._backoff)
                self._backoff = min(self._backoff * 2, RETRY_MAX)

    async def close(self) -> None:
        """The output is complete (the runner says so): nothing more goes out on its own;
        what is pending waits for `tail()`, which the run's end stores."""
        self._closing = True
        if self._flushing is not None:
            await asyncio.gather(self._flushing, return_exceptions=True)
        async with self._lock:  # a flush in progress puts a failed batch back first
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    async def tail(self) -> list[OutputChunk]:
        """What is not stored yet, for the run's end to store (`Finish.chunks`); empty
        when the run was given away."""
        await self.close()
        async with self._lock:
            pending, self._pending, self._pending_bytes = self._pending, [], 0
        if self.fenced:
            return []
        self._stored += sum(len(c.data) for c in pending)
        return pending
