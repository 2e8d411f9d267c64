"""Records the ends of a node's runs in batches: one transaction for every run that ended
while the previous batch was being written.

No timer and no added latency: an end arriving while nothing is being written goes out
at once; ends arriving meanwhile wait for that write and then go out together. Each end
is still recorded by the same fenced UPDATE as `Store.finish` (`Store.finish_many`), so
batching changes how many commits a node pays, never what is recorded.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from uuid import UUID

from cronhive.engine.retry import decide_retry
from cronhive.errors import CronhiveError
from cronhive.model import Outcome
from cronhive.store import Finish, Store

log = logging.getLogger(__name__)

MAX_BATCH = 16
# Batches in flight at once: one batch waiting for a job row that a firing transaction
# holds must not hold up every other end.
WRITERS = 4


@dataclass(frozen=True, kw_only=True)
class _Pending:
    node_id: UUID
    finish: Finish
    done: asyncio.Future[bool]


class Finisher:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._queue: list[_Pending] = []
        self._writers: set[asyncio.Task[None]] = set()

    async def finish(self, execution_id: UUID, node_id: UUID, outcome: Outcome) -> bool:
        """Records how a run ended; returns False if the cluster gave the run away
        meanwhile (the result is dropped). Retries through database failures until the
        store takes the result: a run must not stay `running` because of a hiccup."""
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        finish = Finish(execution_id=execution_id, outcome=outcome)
        self._queue.append(_Pending(node_id=node_id, finish=finish, done=done))
        if len(self._writers) < WRITERS:
            task = asyncio.create_task(self._write(), name="finisher")
            self._writers.add(task)
            task.add_done_callback(self._writers.discard)
        return await asyncio.shield(done)

    async def _write(self) -> None:
        delay = 0.1
        while self._queue:
            node_id = self._queue[0].node_id
            mine = [p for p in self._queue[:MAX_BATCH] if p.node_id == node_id]
            taken = {id(p) for p in mine}
            self._queue = [p for p in self._queue if id(p) not in taken]
            try:
                results = await self._store.finish_many(
                    [p.finish for p in mine], node_id=node_id, retry=decide_retry
                )
            except CronhiveError:
                log.exception("recording the end of %d runs failed; retrying", len(mine))
                self._queue[:0] = mine
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            delay = 0.1
            for pending, result in zip(mine, results, strict=True):
                if not pending.done.done():
                    pending.done.set_result(result is not None)
