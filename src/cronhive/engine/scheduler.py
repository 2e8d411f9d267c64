"""The scheduler loop: turns due jobs into executions, exactly once, on whichever node ticks.

Every node runs it. A tick takes the due jobs in one transaction (locked with SKIP LOCKED
on PostgreSQL, so ticking nodes split the work), inserts one execution per slot (the
unique slot key makes a double fire impossible) and advances `next_fire_at`. The loop
then sleeps until the earliest `next_fire_at` or until a job changes, never a fixed
period. When this node has room, it claims the runs it just queued in the same
transaction (the fast path that keeps fire lag to one round trip).

Pre-armed firing: a tick also takes jobs due within `lookahead` (at most a second). Such a
slot is recorded and claimed ahead of time, for its instant: `not_before`, `queued_at`
and `started_at` are the slot itself, and the worker holds the claimed run until then,
so at the instant only the spawn remains. A job whose concurrency policy looks at its
active runs (forbid, replace) is armed early only when none is active (the policy is
then decided exactly as at the instant); a busy one waits for its instant and is planned
then, as before. `allow` jobs never wait: an every-second job's previous run is often
still starting when its next slot is armed.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from typing import Protocol
from uuid import UUID

from cronhive.engine.clock import Clock
from cronhive.engine.planner import plan
from cronhive.errors import CronhiveError, Fenced
from cronhive.model import Concurrency, Event, Execution, RunState
from cronhive.store import Store
from cronhive.store.base import RunCaps

log = logging.getLogger(__name__)

BATCH = 200  # due jobs per transaction
MAX_SLEEP = timedelta(seconds=30)  # re-check at least this often (a missed NOTIFY)
MAX_LOOKAHEAD = 1.0  # seconds a slot may be armed before its instant
# After a failed tick: retry soon, so firing resumes the moment the database answers.
RETRY_FIRST, RETRY_MAX = 0.1, 1.0


class RunTaker(Protocol):
    """What the scheduler asks of this node's runner of runs (engine.worker.Worker):
    "take these runs", the ones a tick just queued and claimed here (the fast path)."""

    tags: frozenset[str]  # the node's tags: a run is taken here only if it fits them
    caps: RunCaps | None  # per-owner caps the fast path's claim keeps to

    def reserve(self, wanted: int) -> int:
        """Takes up to `wanted` free places for a claim (0: none now)."""
        ...

    def release(self, count: int) -> None:
        """Gives back places `reserve` took that the claim did not use."""
        ...

    def adopt(self, executions: list[Execution]) -> None:
        """Starts these runs, claimed as running on this node (each uses its place)."""
        ...


class Scheduler:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        worker: RunTaker | None,
        node_id: UUID,
        *,
        lookahead: float = 0.0,
    ) -> None:
        if not 0 <= lookahead <= MAX_LOOKAHEAD:
            raise ValueError(f"lookahead must be within 0-{MAX_LOOKAHEAD:g} s, got {lookahead}")
        self._store = store
        self._clock = clock
        self._worker = worker
        self.node_id = node_id
        self._lookahead = timedelta(seconds=lookahead)
        self._wake = asyncio.Event()
        self._running = True
        # The earliest instant of a job the last tick left for its instant (busy, so not
        # armed early): without it the loop would wake for it at once, over and over.
        self._deferred: datetime | None = None
        self._ticked: datetime | None = None  # when the last tick began

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        """Ends `run` after the current tick. Never cancel a tick instead: runs it has
        claimed for this node would be committed but never started."""
        self._running = False
        self._wake.set()

    async def run(self) -> None:
        retry = RETRY_FIRST
        while self._running:
            try:
                while await self.tick() >= BATCH:
                    pass  # more due jobs than one batch: keep going
                upcoming = await self._store.next_fire_at()
            except CronhiveError as exc:
                if retry == RETRY_FIRST:
                    log.warning("scheduler tick failed (%s); retrying", exc)
                upcoming = self._clock.now() + timedelta(seconds=retry)
                retry = min(retry * 2, RETRY_MAX)
            else:
                if retry != RETRY_FIRST:
                    log.info("scheduler ticking again")
                retry = RETRY_FIRST
            now = self._clock.now()
            until = now + MAX_SLEEP if upcoming is None else self._wake_at(upcoming, now)
            self._wake.clear()
            if self._running:
                await self._clock.sleep_until(until, self._wake)

    def _wake_at(self, upcoming: datetime, now: datetime) -> datetime:
        at = upcoming - self._lookahead
        if self._deferred is not None and at <= now:
            # What is armable is armed; the rest waits for its instant (the deferred job)
            # unless a change wakes the loop sooner.
            at = max(at, self._deferred)
        elif self._lookahead and self._ticked is not None and at > self._ticked:
            # Not armable when the last tick began: arm in batches, half a lookahead
            # apart (jobs spread over the second would cost a tick each otherwise). Each
            # slot is still armed at least half the lookahead ahead of its instant.
            at = max(at, self._ticked + self._lookahead / 2)
        return min(at, now + MAX_SLEEP)

    async def tick(self) -> int:
        """Fires every due job (up to one batch), and arms jobs due within the lookahead;
        returns how many jobs it fired or armed."""
        now = self._clock.now()
        events: list[Event] = []
        fast: list[Execution] = []
        room = 0
        deferred = 0
        self._deferred = None
        self._ticked = now
        try:
            async with self._store.firing(now + self._lookahead, BATCH) as batch:
                jobs = list(batch.jobs)
                if not jobs:
                    return 0
                active = await batch.active_runs([j.id for j in jobs])
                new: list[Execution] = []
                moves: list[tuple[UUID, datetime | None]] = []
                for job in jobs:
                    at = now
                    if job.next_fire_at is not None and job.next_fire_at > now:
                        if active.get(job.id) and job.spec.concurrency is not Concurrency.ALLOW:
                            self._defer(job.next_fire_at)
                            deferred += 1
                            continue  # its policy asks what runs at the instant: decided then
                        at = job.next_fire_at  # armed: planned as if ticking at the slot
                    try:
                        p = plan(job, at, active.get(job.id, []))
                    except Exception as exc:  # one job's bad row must not stall every job
                        log.exception("cannot plan job %s; quarantined", job.id)
                        await batch.quarantine(job, f"cannot be planned: {exc}")
                        continue
                    for execution_id in p.stop:
                        await batch.request_stop(execution_id, "replaced by a newer run")
                    new += p.skipped + p.queued
                    moves.append((job.id, p.next_fire_at))
                    if p.passed_over:
                        events.append(_passed_over_event(job.id, job.owner, p.passed_over, at))
                # A few statements per tick whatever the number of due jobs: the due rows
                # stay locked (and other nodes skip them) for as short a time as possible.
                inserted = await batch.insert_many(new)
                await batch.advance_many(moves)
                mine = [
                    e.id
                    for e in new
                    if e.state is RunState.QUEUED and e.id in inserted and self._fits(e)
                ]
                room = self._worker.reserve(len(mine)) if self._worker and mine else 0
                if room and self._worker is not None:
                    try:
                        fast = await batch.claim(
                            mine[:room], self.node_id, now, caps=self._worker.caps
                        )
                    except Fenced:
                        fast = []
        finally:
            if self._worker is not None:
                self._worker.release(room)
        if self._worker is not None:
            self._worker.adopt(fast)
        for event in events:
            await self._store.add_event(event)
        # Deferred jobs are not counted: a batch of them must not make `run` tick again.
        return len(jobs) - deferred

    def _defer(self, instant: datetime) -> None:
        if self._deferred is None or instant < self._deferred:
            self._deferred = instant

    def _fits(self, execution: Execution) -> bool:
        return self._worker is not None and execution.run.target_tags <= self._worker.tags


def _passed_over_event(job_id: UUID, owner: str, count: int, now: datetime) -> Event:
    return Event(
        id=0,
        at=now,
        kind="job.misfire",
        owner=owner,
        job_id=job_id,
        message=f"{count} missed slots passed over without a record (too far behind)",
    )
