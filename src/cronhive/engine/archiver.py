"""Moves ended runs' output from the database to the blob store, one run at a time.

The node's worker hands over each run it finished (`submit`); a sweep every few seconds
also finds ended runs whose output is still in chunks (their node died, the blob store
was down, a node restarted). A failed attempt is retried with backoff; the chunks stay
in the database meanwhile, so readers never miss a byte. Archiving is idempotent across
nodes: each attempt writes its own objects and the first to record its manifest wins
(`Store.archive_output`); a loser deletes its copy.

A local-directory blob store is only readable by this node: while other live nodes
share the database, this node refuses to archive to it (and says so once), keeping the
output in the database where every node can read it.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any
from uuid import UUID

from cronhive.blobs import BlobStore
from cronhive.blobs.archive import write_archive
from cronhive.engine.clock import Clock, SystemClock
from cronhive.engine.node import NodeContext
from cronhive.errors import CronhiveError
from cronhive.model import Outcome
from cronhive.store import Store

log = logging.getLogger(__name__)

SWEEP = 5.0  # seconds between looks for ended runs left unarchived
SETTLE = timedelta(seconds=10)  # a sweep leaves runs this recent to the node that ran them
RECHECK = 5.0  # seconds a local store's refusal (other nodes are up) is trusted
BACKOFF = (0.5, 30.0)  # seconds: first and longest pause before retrying a failed run


class Archiver:
    def __init__(
        self,
        store: Store,
        blobs: BlobStore,
        clock: Clock | None = None,
        *,
        sweep: float = SWEEP,
        settle: timedelta = SETTLE,
    ) -> None:
        self._store = store
        self._blobs = blobs
        self._clock: Clock = clock or SystemClock()  # the node's, once it runs
        self._sweep = sweep
        self._settle = settle
        self._queue: asyncio.Queue[UUID] = asyncio.Queue()
        self._retry: dict[UUID, tuple[float, float]] = {}  # id -> (when, next delay)
        self._refused = False
        self._recheck_at = float("-inf")
        self.archived = 0  # runs archived by this node (for tests and logs)

    __name__ = "archiver"

    def submit(self, execution_id: UUID, outcome: Outcome | None = None) -> None:
        """Archive this run soon (it ended on this node). A run that wrote nothing has
        nothing to archive, and one this node may not archive now is left to a sweep:
        the hot path of a run's end pays nothing for either."""
        if outcome is not None and not (outcome.stdout_bytes or outcome.stderr_bytes):
            return
        if self._refused and asyncio.get_running_loop().time() < self._recheck_at:
            return
        self._queue.put_nowait(execution_id)

    async def __call__(self, ctx: NodeContext | None = None) -> None:
        """Runs until cancelled (a NodeConfig.extra entry, on the node's clock)."""
        if ctx is not None:
            self._clock = ctx.clock
        loop = asyncio.get_running_loop()
        next_sweep = loop.time()
        while True:
            now = loop.time()
            due = [i for i, (when, _) in self._retry.items() if when <= now]
            for execution_id in due:
                await self._attempt(execution_id)
            if now >= next_sweep:
                next_sweep = now + self._sweep
                await self._sweep_once()
            wake = min([next_sweep, *(when for when, _ in self._retry.values())])
            try:
                async with asyncio.timeout(max(0.0, wake - loop.time())):
                    execution_id = await self._queue.get()
            except TimeoutError:
                continue
            await self._attempt(execution_id)

    async def _sweep_once(self) -> None:
        try:
            if not await self._allowed():
                return
            left = await self._store.unarchived_runs(
                finished_before=self._clock.now() - self._settle, limit=16
            )
        except CronhiveError as exc:
            log.warning("looking for unarchived output failed: %s", exc)
            return
        for execution_id in left:
            if execution_id not in self._retry:
                await self._attempt(execution_id)

    async def _attempt(self, execution_id: UUID) -> None:
        try:
            await self.archive(execution_id)
        except CronhiveError as exc:
            _, delay = self._retry.get(execution_id, (0.0, BACKOFF[0]))
            log.warning(
                "archiving the output of %s failed (%s); its chunks stay, retrying in %gs",
                execution_id,
                exc,
                delay,
            )
            when = asyncio.get_running_loop().time() + delay
            self._retry[execution_id] = (when, min(delay * 2, BACKOFF[1]))
            return
        self._retry.pop(execution_id, None)

    async def archive(self, execution_id: UUID) -> bool:
        """Archives one ended run's output now; False if it was left in the database (a
        local store while other nodes share it, or nothing to archive)."""
        if not await self._allowed():
            return False
        if await self._store.output_archive(execution_id) is not None:
            return False
        manifest = await write_archive(self._store, self._blobs, execution_id)
        if not manifest["streams"]:
            return False  # no output: nothing to archive, no row
        if not await self._allowed():  # a node joined while we wrote: ours is unreadable
            await self._discard(manifest)
            return False
        if await self._store.archive_output(execution_id, manifest=manifest, now=self._clock.now()):
            self.archived += 1
            return True
        await self._discard(manifest)  # another node won: ours is surplus
        return False

    async def _discard(self, manifest: dict[str, Any]) -> None:
        for info in manifest["streams"].values():
            await self._blobs.delete(info["key"])

    async def _allowed(self) -> bool:
        """Whether this node may archive to its blob store now. A shared one (S3): yes.
        A local directory: only while no other node is up; a refusal is trusted for a
        few seconds (the hot path skips the check meanwhile), "alone" is asked afresh
        every time (before writing and again before recording), as a node that joins
        could not read what was archived here."""
        if self._blobs.shared:
            return True
        loop = asyncio.get_running_loop()
        if self._refused and loop.time() < self._recheck_at:
            return False
        now = self._clock.now()
        alive = [n for n in await self._store.list_nodes(now=now) if n.alive(now)]
        self._recheck_at = loop.time() + RECHECK
        if len(alive) <= 1:
            self._refused = False
            return True
        if not self._refused:
            log.error(
                "not archiving output to the %s: %d other nodes share this database and "
                "could not read it; output stays in the database (set blobs = s3, see "
                "docs/blobs.md)",
                self._blobs.describe(),
                len(alive) - 1,
            )
            self._refused = True
        return False
