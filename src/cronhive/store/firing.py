"""The `FiringBatch` contract: one scheduler tick's transaction (see `Store.firing`)."""

from __future__ import annotations

import abc
from collections.abc import Collection, Sequence
from datetime import datetime
from uuid import UUID

from cronhive.model import Execution, Job
from cronhive.store.values import RunCaps


class FiringBatch(abc.ABC):
    """The due jobs of one scheduler tick, locked for this transaction.

    On PostgreSQL the rows are taken with `FOR UPDATE SKIP LOCKED`, so two nodes ticking at
    once split the due jobs between them instead of both firing them. Whatever the lock,
    `UNIQUE(job_id, scheduled_for, attempt)` makes a second insert of a slot impossible:
    `insert_many` of a slot that exists already silently leaves it out.
    Nothing is visible to other nodes until the batch's context exits without error.
    """

    jobs: Sequence[Job]

    @abc.abstractmethod
    async def active_runs(self, job_ids: Collection[UUID]) -> dict[UUID, list[Execution]]:
        """Queued or running executions of these jobs (for the concurrency policy)."""

    @abc.abstractmethod
    async def insert_many(self, executions: Sequence[Execution]) -> set[UUID]:
        """Inserts queued or skipped executions in one statement; returns the ids
        inserted (a slot that exists already is left out: see the class docstring)."""

    @abc.abstractmethod
    async def advance_many(self, moves: Sequence[tuple[UUID, datetime | None]]) -> None:
        """Moves the jobs' next fire times in one round trip: (job id, next fire time)
        pairs (None: the schedule is exhausted)."""

    @abc.abstractmethod
    async def request_stop(self, execution_id: UUID, reason: str) -> None:
        """Asks the node running `execution_id` to stop it (concurrency `replace`)."""

    @abc.abstractmethod
    async def quarantine(self, job: Job, reason: str) -> None:
        """Sets a job aside that cannot be read or planned: `quarantine = reason`, no
        next fire time (it is not due again until its owner changes it), and a
        `job.quarantined` event; the other jobs of the batch fire as usual. `firing`
        does this itself for rows it cannot read (they are not in `jobs`)."""

    @abc.abstractmethod
    async def claim(
        self,
        execution_ids: Collection[UUID],
        node_id: UUID,
        now: datetime,
        *,
        caps: RunCaps | None = None,
    ) -> list[Execution]:
        """The fast path: the firing node takes these just-inserted runs itself (the
        caller checked tags and capacity). Returns them as `running` on `node_id`;
        with `caps`, those of an owner at its cap stay queued (as `Store.claim`)."""
