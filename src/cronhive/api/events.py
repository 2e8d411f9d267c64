"""EventService: what happened, oldest first, then live, filtered to what the caller
sees (service.events)."""

from __future__ import annotations

from grpclib.server import Stream

from cronhive.api import validate
from cronhive.api._generated.cronhive.v1 import cronhive_grpc
from cronhive.api._generated.cronhive.v1 import cronhive_pb2 as pb
from cronhive.api._service import Servicer
from cronhive.api.convert import event_pb
from cronhive.api.errors import guard

__all__ = ["EventService"]


class EventService(Servicer, cronhive_grpc.EventServiceBase):
    async def Watch(self, stream: Stream[pb.WatchEventsRequest, pb.Event]) -> None:
        async with guard("EventService.Watch"):
            req, who = await self.request(stream)
            job_id = validate.uuid_of(req.job_id, field="job_id") if req.job_id else None
            with self.api.streaming():
                async for event in self.svc.events(
                    who,
                    job_id=job_id,
                    after_id=req.after_id if req.HasField("after_id") else None,
                    follow=not req.backlog_only,
                    closing=self.api.closing,
                ):
                    await stream.send_message(event_pb(event))
            if not req.backlog_only:
                self.api.check_open()  # a watch ends only when the server closes
