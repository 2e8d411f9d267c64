"""Notifications: the reactions outbox as its owners see it, retry by hand, and each
owner's default triggers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from uuid import UUID

from cronhive.auth import Identity, resolve_owner
from cronhive.model import Delivery
from cronhive.notify import check_defaults, normalize
from cronhive.service._base import Base

__all__ = ["NotificationOps"]

Notify = dict[str, tuple[str, ...]]


class NotificationOps(Base):
    async def list_notifications(
        self, who: Identity, *, job_id: UUID | None = None, limit: int = 100
    ) -> list[Delivery]:
        """The latest deliveries (webhooks, mails, chained runs) the caller may see,
        newest first; of one job with `job_id`."""
        return await self.store.list_deliveries(
            visible_to=self.visible(who), job_id=job_id, limit=limit
        )

    async def retry_notification(self, who: Identity, delivery_id: UUID) -> Delivery:
        """A failed delivery queued again (Conflict if it is not failed)."""
        d = await self.store.get_delivery(delivery_id, visible_to=self.visible(who))
        return await self.store.retry_delivery(
            d.id,
            visible_to=self.visible(who),
            now=self.clock.now(),
            event=self.event(
                "notification.retried",
                d.owner,
                f"{d.event} to {d.target} queued again by {who.user}",
                job_id=d.job_id,
                execution_id=d.execution_id,
            ),
        )

    async def notify_defaults(self, who: Identity, owner: str) -> tuple[str, Notify]:
        """`owner`'s ("" = the caller) default triggers, {event: targets}."""
        owner = resolve_owner(who, owner)
        found = await self.store.notify_defaults(visible_to=self.visible(who))
        return owner, dict(found.get(owner, {}))

    async def set_notify_defaults(
        self, who: Identity, owner: str, rules: Mapping[str, Sequence[str]]
    ) -> tuple[str, Notify]:
        owner = resolve_owner(who, owner)
        notify = normalize({event: list(targets) for event, targets in rules.items()})
        check_defaults(notify, self.targets)
        said = " ".join(f"{e}={','.join(t)}" for e, t in sorted(notify.items())) or "none"
        await self.store.set_notify_defaults(
            owner,
            notify,
            by=who.owner,
            now=self.clock.now(),
            event=self.event(
                "notify.defaults", owner, f"default notifications set by {who.user}: {said}"
            ),
        )
        return owner, notify
