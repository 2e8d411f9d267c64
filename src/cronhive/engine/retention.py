"""Retention: old runs (with their output, in the database or archived) and old events
are deleted, in small batches, by one node of the cluster at a time.

The policy (`RetentionPolicy`): runs queued more than `run_days` ago, and runs beyond the
`runs_per_job` newest of their job, are deleted, except the newest run of every job
(however old: `cronhive ls` keeps showing how a job last ended) and runs still queued
or running; events older than `event_days` are deleted. Zero turns a rule off.

One node at a time: each pass first takes the `retention` lease in the database
(`Store.hold_task`, on the database's clock); a node that cannot simply waits for its
next pass. Each batch deletes a run's archived objects first, then its rows (chunks,
archive record, the run) in one transaction: a failure between the two leaves rows
whose objects are gone, deleted again by the next pass; never objects nobody points to.
A run whose objects cannot be deleted now (the blob store is down) keeps its rows.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import timedelta
from uuid import UUID

from cronhive.blobs import BlobStore
from cronhive.blobs.archive import run_prefix
from cronhive.engine.clock import Clock
from cronhive.engine.node import NodeContext
from cronhive.errors import CronhiveError
from cronhive.store import Store

log = logging.getLogger(__name__)

TASK = "retention"
FOREVER_DAYS = 100_000.0  # "no age limit", as a cutoff both databases can store


@dataclass(frozen=True, kw_only=True)
class RetentionPolicy:
    run_days: float = 30.0
    runs_per_job: int = 1000
    event_days: float = 30.0
    batch: int = 200  # runs (or events) per transaction
    max_batches: int = 25  # per pass: a pass stays short; the next one goes on
    every: float = 60.0  # seconds between passes


@dataclass(frozen=True, kw_only=True)
class Pass:
    """What one pass did."""

    held: bool  # whether this node had the lease (else it did nothing)
    runs: int = 0
    events: int = 0


class Retention:
    __name__ = "retention"

    def __init__(
        self, store: Store, blobs: BlobStore | None, policy: RetentionPolicy | None = None
    ) -> None:
        self._store = store
        self._blobs = blobs
        self.policy = policy or RetentionPolicy()

    async def __call__(self, ctx: NodeContext) -> None:
        """Passes every `policy.every` seconds until cancelled (a NodeConfig.extra entry)."""
        while True:
            await asyncio.sleep(self.policy.every)
            try:
                done = await self.run_once(ctx.clock, ctx.node.id)
            except CronhiveError as exc:
                log.warning("retention pass failed: %s", exc)
                continue
            if done.runs or done.events:
                log.info("retention: deleted %d runs and %d events", done.runs, done.events)

    async def run_once(self, clock: Clock, node_id: UUID) -> Pass:
        """One pass, if this node gets the lease; `clock` decides what is old."""
        p = self.policy
        lease = p.every * 2 + 30  # outlives a pass; another node takes over after it
        if not await self._store.hold_task(TASK, node_id=node_id, ttl=lease, now=clock.now()):
            return Pass(held=False)
        runs = events = 0
        runs_kept = p.run_days > 0 or p.runs_per_job > 0
        for _ in range(p.max_batches if runs_kept else 0):
            # A rule turned off (0) becomes one nothing meets.
            days = p.run_days if p.run_days > 0 else FOREVER_DAYS
            keep = p.runs_per_job if p.runs_per_job > 0 else 2**62
            ids = await self._store.expired_runs(
                older_than=clock.now() - timedelta(days=days), keep_per_job=keep, limit=p.batch
            )
            if not ids:
                break
            gone = [i for i in ids if await self._delete_objects(i)]
            runs += await self._store.delete_runs(gone)
            if len(ids) < p.batch or len(gone) < len(ids):
                break
        if p.event_days > 0:
            for _ in range(p.max_batches):
                cutoff = clock.now() - timedelta(days=p.event_days)
                count = await self._store.delete_events(older_than=cutoff, limit=p.batch)
                events += count
                if count < p.batch:
                    break
        return Pass(held=True, runs=runs, events=events)

    async def _delete_objects(self, execution_id: UUID) -> bool:
        """Deletes the run's archived objects; False if the blob store failed."""
        if self._blobs is None:
            return True
        try:
            keys = [info.key async for info in self._blobs.list(run_prefix(execution_id))]
            for key in keys:
                await self._blobs.delete(key)
        except CronhiveError as exc:
            log.warning("retention: the output of %s stays for now (%s)", execution_id, exc)
            return False
        return True
