"""NotificationService: the reactions outbox as its owners see it, and retry by hand."""

from __future__ import annotations

from collections.abc import Mapping

from grpclib.server import Stream

from cronhive.api import validate
from cronhive.api._generated.cronhive.v1 import cronhive_grpc
from cronhive.api._generated.cronhive.v1 import cronhive_pb2 as pb
from cronhive.api._service import Servicer
from cronhive.api.convert import notification_pb
from cronhive.api.errors import guard

__all__ = ["NotificationService", "notification_pb"]


def defaults_pb(owner: str, notify: Mapping[str, tuple[str, ...]]) -> pb.NotifyDefaults:
    msg = pb.NotifyDefaults(owner=owner)
    for event, targets in sorted(notify.items()):
        msg.notify.add(event=event, targets=sorted(targets))
    return msg


class NotificationService(Servicer, cronhive_grpc.NotificationServiceBase):
    async def ListNotifications(
        self, stream: Stream[pb.ListNotificationsRequest, pb.ListNotificationsResponse]
    ) -> None:
        async with guard("NotificationService.ListNotifications"):
            req, who = await self.request(stream)
            job_id = validate.uuid_of(req.job_id, field="job_id") if req.job_id else None
            found = await self.svc.list_notifications(
                who, job_id=job_id, limit=validate.page_size(req.page_size)
            )
            reply = pb.ListNotificationsResponse(notifications=[notification_pb(d) for d in found])
            await stream.send_message(reply)

    async def RetryNotification(
        self, stream: Stream[pb.RetryNotificationRequest, pb.Notification]
    ) -> None:
        async with guard("NotificationService.RetryNotification"):
            req, who = await self.request(stream)
            d = await self.svc.retry_notification(who, validate.uuid_of(req.id))
            await stream.send_message(notification_pb(d))

    async def GetNotifyDefaults(
        self, stream: Stream[pb.GetNotifyDefaultsRequest, pb.NotifyDefaults]
    ) -> None:
        async with guard("NotificationService.GetNotifyDefaults"):
            req, who = await self.request(stream)
            owner, notify = await self.svc.notify_defaults(who, req.owner)
            await stream.send_message(defaults_pb(owner, notify))

    async def SetNotifyDefaults(self, stream: Stream[pb.NotifyDefaults, pb.NotifyDefaults]) -> None:
        async with guard("NotificationService.SetNotifyDefaults"):
            req, who = await self.request(stream)
            rules = {r.event: list(r.targets) for r in req.notify}
            owner, notify = await self.svc.set_notify_defaults(who, req.owner, rules)
            await stream.send_message(defaults_pb(owner, notify))
