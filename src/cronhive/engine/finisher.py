"""Records the ends of a node's runs in batches: one transaction for every run that ended
while the previous batch was being written.

No timer and no added latency: an end arriving while a writer is idle goes out at once;
ends arriving meanwhile wait for that write and then go out together. Each end is still
recorded by the same fenced UPDATE as `Store.finish` (`Store.finish_many`), so batching
changes how many commits a node pays, never what is recorded. The writers live as long
as the Finisher: an end can never arrive in a moment when no writer will take it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

from cronhive.engine.retry import decide_retry
from cronhive.errors import CronhiveError
from cronhive.model import Outcome, OutputChunk
from cronhive.store import Finish, Store

log = logging.getLogger(__name__)

MAX_BATCH = 16
# Batches in flight at once: one batch waiting for a job row that a firing transaction
# holds must not hold up every other end.
WRITERS = 4
BACKOFF = (0.1, 2.0)  # seconds: first and longest pause between failed writes


@dataclass(frozen=True, kw_only=True)
class _Pending:
    node_id: UUID
    finish: Finish
    done: asyncio.Future[bool]


class Finisher:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._writers: list[asyncio.Task[None]] = []

    async def finish(
        self,
        execution_id: UUID,
        node_id: UUID,
        outcome: Outcome,
        chunks: Sequence[OutputChunk] = (),
    ) -> bool:
        """Records how a run ended, with the last of its output (`chunks`); returns False
        if the cluster gave the run away meanwhile (the result is dropped). Retries
        through database failures until the store takes the result: a run must not stay
        `running` because of a hiccup."""
        if not self._writers:
            self._writers = [
                asyncio.create_task(self._write(), name=f"finisher-{i}") for i in range(WRITERS)
            ]
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        finish = Finish(execution_id=execution_id, outcome=outcome, chunks=chunks)
        self._queue.put_nowait(_Pending(node_id=node_id, finish=finish, done=done))
        return await asyncio.shield(done)

    async def close(self) -> None:
        """Stops the writers (call once no more ends can arrive)."""
        for task in self._writers:
            task.cancel()
        await asyncio.gather(*self._writers, return_exceptions=True)
        self._writers = []

    async def _write(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            # One node id per transaction (it changes only when the node re-registers).
            for node_id in dict.fromkeys(p.node_id for p in batch):
                await self._record(node_id, [p for p in batch if p.node_id == node_id])

    async def _record(self, node_id: UUID, mine: list[_Pending]) -> None:
        delay = BACKOFF[0]
        while True:
            try:
                results = await self._store.finish_many(
                    [p.finish for p in mine], node_id=node_id, retry=decide_retry
                )
            except CronhiveError as exc:
                log.warning("recording the end of %d runs failed (%s); retrying", len(mine), exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, BACKOFF[1])
                continue
            for pending, result in zip(mine, results, strict=True):
                if not pending.done.done():
                    pending.done.set_result(result is not None)
            return
