"""The storage seam: the one interface the engine, API and web use to reach the database.

Every coordination guarantee of cronhive is a guarantee of this interface, implemented
with transactions, row locks and unique constraints, never with in-process state, so
that any number of nodes (each holding its own `Store`) may share one PostgreSQL
database. SQLite implements the same contract for a single node.

Conventions for every method:
- A write that takes `event` records it in its own transaction: the action and its
  event commit together or not at all (the application layer, cronhive.service, passes
  one with every user's action).
- Instants in and out are aware UTC datetimes; `now` is always passed in (the caller
  owns the clock, so tests never sleep).
- `visible_to` is the set of owner principals the caller may see (`user:x`,
  `group:y`), or None for "everything" (admins and the engine itself). A row the caller
  may not see raises `NotFound` exactly as a missing one does.
- Driver errors never escape: they become `StoreError` (`StoreUnavailable` when the
  database cannot be reached); integrity clashes the caller can act on become
  `Conflict`.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Collection, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from cronhive.model import (
    Event,
    Execution,
    Job,
    JobSpec,
    Node,
    OutputChunk,
    RunState,
    Stream,
)
from cronhive.store.firing import FiringBatch
from cronhive.store.outbox import OutboxStore
from cronhive.store.sessions import WebSession
from cronhive.store.tokens import Token
from cronhive.store.values import (
    DOWN_RETENTION,
    Finish,
    Notification,
    RetryDecider,
    RunCaps,
    ScriptRecord,
    Usage,
    Visibility,
)

__all__ = [
    "DOWN_RETENTION",
    "Finish",
    "FiringBatch",
    "Notification",
    "RetryDecider",
    "RunCaps",
    "ScriptRecord",
    "Store",
    "Usage",
    "Visibility",
]


class Store(OutboxStore):
    """Jobs, executions, nodes, output and events; see the module docstring."""

    # --- lifecycle -------------------------------------------------------------------

    @abc.abstractmethod
    async def close(self) -> None:
        """Releases connections. The store is unusable afterwards."""

    @abc.abstractmethod
    async def database_time(self) -> datetime:
        """The database's clock, the cluster's clock (`clock_timestamp()` on PostgreSQL;
        on SQLite, one node, the local clock). Raises `StoreUnavailable`."""

    # --- jobs ------------------------------------------------------------------------

    @abc.abstractmethod
    async def create_job(
        self,
        spec: JobSpec,
        *,
        next_fire_at: datetime | None,
        created_by: str,
        now: datetime,
        event: Event | None = None,
    ) -> Job:
        """Stores a new job, and `event` (its `job_id` set to the new job's) in the same
        transaction. Raises `Conflict` if the owner already has a job of that name."""

    @abc.abstractmethod
    async def get_job(self, job_id: UUID, *, visible_to: Visibility) -> Job:
        """Raises `NotFound`."""

    @abc.abstractmethod
    async def find_job(self, name: str, *, owner: str, visible_to: Visibility) -> Job:
        """The job named `name` of `owner`. Raises `NotFound`."""

    @abc.abstractmethod
    async def list_jobs(
        self,
        *,
        visible_to: Visibility,
        owner: str | None = None,
        name_prefix: str | None = None,
        enabled: bool | None = None,
        after: tuple[str, str] | None = None,
        limit: int = 100,
    ) -> list[Job]:
        """Jobs ordered by (owner, name); `after` is the (owner, name) of the last row of
        the previous page (keyset paging: stable while jobs are added)."""

    @abc.abstractmethod
    async def update_job(
        self,
        job_id: UUID,
        spec: JobSpec,
        *,
        next_fire_at: datetime | None,
        visible_to: Visibility,
        now: datetime,
        event: Event | None = None,
    ) -> Job:
        """Replaces the job's spec (and records `event`, in the same transaction). Raises
        `NotFound`, or `Conflict` on a name clash."""

    @abc.abstractmethod
    async def set_enabled(
        self,
        job_id: UUID,
        enabled: bool,
        *,
        next_fire_at: datetime | None,
        visible_to: Visibility,
        now: datetime,
        event: Event | None = None,
    ) -> Job:
        """Pauses or resumes (with `event`, in one transaction). Raises `NotFound`."""

    @abc.abstractmethod
    async def delete_job(
        self, job_id: UUID, *, visible_to: Visibility, now: datetime, event: Event | None = None
    ) -> None:
        """Deletes the job, with `event` in the same transaction; its executions stay
        (job_id kept, history is append-only).
        Queued runs of the job are recorded `skipped` with reason `job deleted`.
        Raises `NotFound`."""

    # --- firing and claiming ---------------------------------------------------------

    @abc.abstractmethod
    def firing(self, now: datetime, limit: int) -> AbstractAsyncContextManager[FiringBatch]:
        """At most `limit` enabled jobs with `next_fire_at <= now`, oldest first, locked
        for one transaction (see `FiringBatch`). Uses the index on `next_fire_at`: the
        cost depends on the number of due jobs, not of registered ones."""

    @abc.abstractmethod
    async def next_fire_at(self) -> datetime | None:
        """The earliest `next_fire_at` of any enabled job (the scheduler sleeps until it)."""

    @abc.abstractmethod
    async def enqueue(self, execution: Execution, *, event: Event | None = None) -> Execution:
        """Inserts a queued execution (ad-hoc run or trigger), with `event` in the same
        transaction. Raises `Conflict` if its slot exists already."""

    @abc.abstractmethod
    async def claim(
        self,
        node_id: UUID,
        tags: frozenset[str],
        limit: int,
        now: datetime,
        *,
        caps: RunCaps | None = None,
    ) -> list[Execution]:
        """Atomically takes up to `limit` queued executions with `not_before <= now` whose
        target tags are a subset of `tags`, marking them `running` on `node_id` with
        `started_at = now`. Two nodes claiming at once never get the same execution
        (`FOR UPDATE SKIP LOCKED` on PostgreSQL). Raises `Fenced` if the node's lease is
        gone. Returned oldest first (`not_before`, `queued_at`).

        Fair across owners: candidates are taken in order of their owner's load (the
        owner's running runs plus the run's place in the owner's queue, oldest first),
        so the k-th queued run of an owner with r running goes after every other
        owner's runs of load below r + k. An owner with many queued runs therefore
        delays another's next run by at most one run start. With `caps`, a run whose
        load exceeds its owner's cap stays queued. The cap is read in the claim's
        snapshot: two nodes claiming in the same instant may each take an owner's last
        free places (bounded by the claims racing, never by the queue)."""

    @abc.abstractmethod
    async def usage(self, owner: str) -> Usage:
        """How many jobs, queued and running runs `owner` has (one read, for quotas)."""

    @abc.abstractmethod
    async def next_claimable_at(
        self, tags: frozenset[str], *, caps: RunCaps | None = None
    ) -> datetime | None:
        """The earliest `not_before` of queued executions a node with `tags` may claim
        (a retry waiting out its backoff), or None. Lets a worker sleep until then. With
        `caps`, runs of an owner at its cap are left out (they wait for a run of that
        owner to end, not for a time)."""

    @abc.abstractmethod
    async def finish_many(
        self, finishes: Sequence[Finish], *, node_id: UUID, retry: RetryDecider
    ) -> list[tuple[Execution, Execution | None] | None]:
        """Records how runs of `node_id` ended, in one transaction (a node ending many
        runs at once pays one commit). Each end is recorded only if its run is still
        `running` on `node_id`; otherwise (it was reaped and given away) its entry is None
        and that run is unchanged, while the others are still recorded. With each end, in
        the same transaction: the job's counters, last run and last state; an event; and,
        when `retry` returns an instant, the next attempt as a new queued execution.
        Results, in input order, are (the finished execution, its retry or None).
        Raises `StoreError` (nothing recorded) when the transaction fails."""

    @abc.abstractmethod
    async def request_stop(
        self,
        execution_id: UUID,
        *,
        visible_to: Visibility,
        reason: str,
        now: datetime,
        event: Event | None = None,
    ) -> Execution:
        """Queued: becomes `stopped` at once. Running: `stop_requested` is set and the
        node running it is notified. Terminal: unchanged. `event` is recorded in the same
        transaction. Raises `NotFound`."""

    @abc.abstractmethod
    async def get_execution(self, execution_id: UUID, *, visible_to: Visibility) -> Execution:
        """Raises `NotFound`."""

    @abc.abstractmethod
    async def list_executions(
        self,
        *,
        visible_to: Visibility,
        job_id: UUID | None = None,
        states: Collection[RunState] | None = None,
        before: tuple[datetime, UUID] | None = None,
        limit: int = 100,
    ) -> list[Execution]:
        """Newest first by (queued_at, id); `before` is the last row of the previous page."""

    # --- nodes and liveness ----------------------------------------------------------

    @abc.abstractmethod
    async def register_node(
        self, *, name: str, tags: frozenset[str], capacity: int, ttl: float, now: datetime
    ) -> Node:
        """Adds this process as a new node with a lease of `ttl` seconds. SQLite allows
        one live node per database file: a second raises `Conflict` naming the first."""

    @abc.abstractmethod
    async def renew_lease(self, node_id: UUID, *, ttl: float, now: datetime) -> list[UUID]:
        """Extends the lease, only if it has not expired (renew at a third of the TTL).
        Raises `Fenced` when it has: the cluster may have given this node's runs away and
        the node must stop them. Returns running executions on this node whose stop was
        requested (a poll that backs up the `stop` notification)."""

    @abc.abstractmethod
    async def running_on(self, node_id: UUID) -> list[UUID]:
        """Executions recorded `running` on `node_id` (a node checks them against the
        runs it really has: a claim whose commit it never heard of leaves one behind)."""

    @abc.abstractmethod
    async def deregister_node(self, node_id: UUID, *, now: datetime) -> None:
        """A clean exit: the node is marked down ("left the cluster") and its lease ends;
        it must have no running executions (`Conflict`)."""

    @abc.abstractmethod
    async def list_nodes(self, *, now: datetime) -> list[Node]:
        """Every node not yet forgotten, by name: live, expired but not yet reaped, and
        down (see `Node.state`)."""

    @abc.abstractmethod
    async def reap(
        self, *, now: datetime, retry: RetryDecider, keep_down: timedelta = DOWN_RETENTION
    ) -> list[Execution]:
        """For every node whose lease expired: its running executions become `lost`
        (reason names the node), retries are queued under `retry`, the node is marked
        down (it stays listed, with its last heartbeat, for `keep_down`; older down rows
        are deleted); one transaction per node, safe for any number of nodes to run at
        once (each lost run is reaped exactly once). Returns the lost executions."""

    # --- output ----------------------------------------------------------------------

    @abc.abstractmethod
    async def append_output(
        self, execution_id: UUID, *, node_id: UUID, chunks: Sequence[OutputChunk]
    ) -> None:
        """Appends chunks (in seq order) of a run this node is running. Raises `Fenced`
        if the run is not `running` on `node_id`. Re-appending an existing (stream,
        offset) is ignored, so a retried batch never duplicates bytes."""

    @abc.abstractmethod
    async def read_output(
        self,
        execution_id: UUID,
        *,
        streams: Collection[Stream],
        after_seq: int = -1,
        limit: int = 256,
    ) -> list[OutputChunk]:
        """Chunks with seq > `after_seq` of the given streams, in seq order. Visibility
        is the caller's business (check the execution first)."""

    # --- events and wake-ups ----------------------------------------------------

    @abc.abstractmethod
    async def add_event(self, event: Event) -> None:
        """Records an event (its id is assigned by the store and ignored here)."""

    @abc.abstractmethod
    async def list_events(
        self, *, visible_to: Visibility, after_id: int = 0, limit: int = 100
    ) -> list[Event]:
        """Events with id > `after_id`, oldest first."""

    @abc.abstractmethod
    def listen(self) -> AbstractAsyncContextManager[AsyncIterator[Notification]]:
        """Notifications from every node while the context is open. Delivery is a hint,
        not a guarantee: a listener must still poll at its own pace."""

    # --- personal access tokens ------------------------------------------------------

    @abc.abstractmethod
    async def create_token(self, token: Token, *, event: Event | None = None) -> Token:
        """Stores a new token (the caller made its id and digest, see store.tokens), with
        `event`. Raises `Conflict` if the user has a live (unrevoked) token of that name."""

    @abc.abstractmethod
    async def list_tokens(self, user: str) -> list[Token]:
        """Every token of `user`, revoked and expired ones included, oldest first."""

    @abc.abstractmethod
    async def revoke_token(
        self, user: str, token_id: UUID, *, now: datetime, event: Event | None = None
    ) -> Token:
        """Revokes `user`'s token (revoking twice keeps the first instant), with `event`
        in the same transaction. Raises
        `NotFound` for a token that is missing or belongs to someone else."""

    @abc.abstractmethod
    async def find_token(self, token_id: UUID, digest: str, *, now: datetime) -> Token:
        """The usable token with this id whose stored digest equals `digest` (compared
        in constant time), recording `last_used_at = now`. Raises `NotFound` alike for a
        missing, wrong, expired or revoked token."""

    # --- blobs: scripts and archived output (cronhive.blobs) -----------------------

    @abc.abstractmethod
    async def add_script(
        self,
        digest: str,
        *,
        owner: str,
        name: str,
        size: int,
        now: datetime,
        event: Event | None = None,
    ) -> None:
        """Records that `owner` stored the script body `digest` (already in the blob
        store), and `event`; storing the same body again changes nothing else."""

    @abc.abstractmethod
    async def find_script(self, digest: str, *, visible_to: Visibility) -> ScriptRecord:
        """The script `digest` if one of `visible_to` stored it. Raises `NotFound`."""

    @abc.abstractmethod
    async def archive_output(
        self, execution_id: UUID, *, manifest: dict[str, Any], now: datetime
    ) -> bool:
        """In one transaction: records where the run's output went (`manifest`, see
        cronhive.blobs.archive) and deletes its chunks. Call only once the archive is
        verified. False (and nothing changed) if the run was archived already: the
        caller's copy is surplus."""

    @abc.abstractmethod
    async def output_archive(self, execution_id: UUID) -> dict[str, Any] | None:
        """The manifest of the run's archived output, or None if it is not archived."""

    @abc.abstractmethod
    async def unarchived_runs(
        self, *, finished_before: datetime, limit: int = 16
    ) -> Sequence[UUID]:
        """Ended runs (before `finished_before`) whose output is still in chunks, oldest
        first: what an archiver has left to do (a run whose node died, an outage)."""

    # --- retention (engine.retention) ----------------------------------------------

    @abc.abstractmethod
    async def hold_task(self, task: str, *, node_id: UUID, ttl: float, now: datetime) -> bool:
        """Takes or renews the cluster-wide lease on `task` for `ttl` seconds: True if
        this node holds it now (it was free, expired, or this node's already)."""

    @abc.abstractmethod
    async def expired_runs(
        self, *, older_than: datetime, keep_per_job: int, limit: int
    ) -> list[UUID]:
        """Up to `limit` ended runs past the policy: queued before `older_than`, or not
        among the `keep_per_job` newest of their job. The newest run of every job is
        never among them (however old), nor a queued or running one."""

    @abc.abstractmethod
    async def delete_runs(self, execution_ids: Collection[UUID]) -> int:
        """Deletes these ended runs with their chunks and archive records, in one
        transaction (active ones are left); returns how many runs went."""

    @abc.abstractmethod
    async def delete_events(self, *, older_than: datetime, limit: int) -> int:
        """Deletes up to `limit` events from before `older_than`, oldest first."""

    # --- operations ------------------------------------------------------------------

    @abc.abstractmethod
    async def output_sizes(self, execution_id: UUID) -> dict[Stream, int]:
        """Bytes of each stream of the run stored as chunks now (the end of the last
        chunk), for the streams that have any: the live size of a run still writing, or
        of a lost one whose end was never recorded."""

    @abc.abstractmethod
    async def create_web_session(self, session: WebSession, *, now: datetime) -> WebSession:
        """Stores a browser sign-in (store.sessions); deletes sessions expired at `now`."""

    @abc.abstractmethod
    async def find_web_session(self, digest: str, *, now: datetime) -> WebSession:
        """The session whose id hashes to `digest`, if not expired at `now`; else
        `NotFound`. (Whether its token is still usable is the caller's check.)"""

    @abc.abstractmethod
    async def delete_web_session(self, digest: str) -> None:
        """Signs the session out, on every node at once; a missing one is no error."""
