"""The outbox half of the `Store` interface: notification deliveries and the owners'
default triggers (cronhive.notify, engine.deliverer). See cronhive.store.base for the
conventions every method keeps."""

from __future__ import annotations

import abc
from collections.abc import Collection, Iterable, Mapping
from datetime import datetime
from uuid import UUID

from cronhive.model import Delivery, DeliveryState, Event, OutputChunk
from cronhive.store.values import Visibility


class OutboxStore(abc.ABC):
    """Deliveries: claimed, settled, listed, retried by hand; default triggers."""

    # --- reactions: the outbox ---------------------------------------------------------
    # Deliveries are never added by callers: `finish_many`, `reap`, a firing batch's
    # skipped slots and a claim write them in the transaction that records the outcome,
    # one per (event, target) of the job's `notify` triggers (see store._outbox): a
    # failure (failed, timed_out or lost with no retry queued), a recovery (the first
    # success after one), a success, missed slots (one delivery per job and tick), a start.

    @abc.abstractmethod
    async def claim_deliveries(
        self,
        node_id: UUID,
        *,
        targets: Collection[str],
        limit: int,
        claim_for: float,
        now: datetime,
    ) -> list[Delivery]:
        """Takes up to `limit` due deliveries to `targets` (the ones this node's
        configuration knows; the others wait for a node that does): `pending` ones whose
        `next_attempt_at <= now`, and `delivering` ones whose claim expired or whose
        node's lease is gone (a dead node's work is taken over). They become
        `delivering`, claimed until `now + claim_for` seconds, `attempts` + 1. Two nodes
        never get the same row (`FOR UPDATE SKIP LOCKED` on PostgreSQL; SQLite's write
        lock). A node without a live lease gets nothing."""

    @abc.abstractmethod
    async def settle_delivery(
        self,
        delivery_id: UUID,
        *,
        node_id: UUID,
        now: datetime,
        error: str | None = None,
        retry_at: datetime | None = None,
    ) -> bool:
        """Records an attempt's result, only if `node_id` still holds the claim (False
        otherwise: it was taken over, and the other node's result stands). No `error`:
        `delivered`; an error with `retry_at`: `pending` again until then; an error
        without: `failed` (given up)."""

    @abc.abstractmethod
    async def list_deliveries(
        self,
        *,
        visible_to: Visibility,
        job_id: UUID | None = None,
        states: Iterable[DeliveryState] | None = None,
        limit: int = 100,
    ) -> list[Delivery]:
        """Deliveries the caller may see (by the job's owner), newest first."""

    @abc.abstractmethod
    async def get_delivery(self, delivery_id: UUID, *, visible_to: Visibility) -> Delivery:
        """Raises `NotFound`."""

    @abc.abstractmethod
    async def retry_delivery(
        self,
        delivery_id: UUID,
        *,
        visible_to: Visibility,
        now: datetime,
        event: Event | None = None,
    ) -> Delivery:
        """A `failed` delivery becomes `pending` at `now` with its attempts reset (a retry
        by hand), `event` recorded with it. Raises `NotFound`, or `Conflict` if it is not
        failed (then no event either)."""

    @abc.abstractmethod
    async def set_notify_defaults(
        self,
        owner: str,
        notify: Mapping[str, tuple[str, ...]],
        *,
        by: str,
        now: datetime,
        event: Event | None = None,
    ) -> None:
        """Sets `owner`'s default triggers ({event: targets}; empty: none), recording
        `event` in the same transaction. Every job of
        the owner notifies them for each event it has no rule of its own for, from the
        next outcome on (the outbox writers read them in the same statement as the
        job's own triggers)."""

    @abc.abstractmethod
    async def notify_defaults(
        self, *, visible_to: Visibility
    ) -> dict[str, dict[str, tuple[str, ...]]]:
        """The default triggers of the owners the caller may see, by owner (none: absent)."""

    @abc.abstractmethod
    async def output_tail(self, execution_id: UUID, *, chunks: int = 8) -> list[OutputChunk]:
        """The last `chunks` chunks of a run (both streams), in seq order: what a
        notification quotes. Visibility is the caller's business."""
