"""EventService: what happened, oldest first, then live, filtered to what the caller sees.

Visibility is the store's (`visible_to`): a user never receives an event of an owner
they may not see; cluster events (no owner) reach admins only.
"""

from __future__ import annotations

from uuid import UUID

from grpclib.server import Stream

from cronhive.api import validate
from cronhive.api._generated.cronhive.v1 import cronhive_grpc
from cronhive.api._generated.cronhive.v1 import cronhive_pb2 as pb
from cronhive.api._service import Servicer
from cronhive.api.convert import event_pb
from cronhive.api.errors import guard
from cronhive.errors import InvalidInput, NotFound
from cronhive.store.base import Visibility

__all__ = ["EventService"]

BATCH = 500


class EventService(Servicer, cronhive_grpc.EventServiceBase):
    async def Watch(self, stream: Stream[pb.WatchEventsRequest, pb.Event]) -> None:
        async with guard("EventService.Watch"):
            req, _, visible = await self.request(stream)
            job_id = await self._job(req.job_id, visible)
            if req.HasField("after_id"):
                if req.after_id < 0:
                    raise InvalidInput("after_id: must be >= 0", field="after_id")
                after = req.after_id
            else:
                after = await self._tail(visible)
            store = self.api.store
            with self.api.streaming(), self.api.hub.subscribe("events") as wake:
                while True:
                    wake.clear()
                    events = await store.list_events(
                        visible_to=visible, after_id=after, limit=BATCH
                    )
                    for event in events:
                        after = event.id
                        if job_id is None or event.job_id == job_id:
                            await stream.send_message(event_pb(event))
                    if len(events) < BATCH:
                        if req.backlog_only:
                            return  # what is stored now was sent
                        await self.api.wait([wake])

    async def _job(self, text: str, visible: Visibility) -> UUID | None:
        if not text:
            return None
        job_id = validate.uuid_of(text, field="job_id")
        try:
            await self.api.store.get_job(job_id, visible_to=visible)
        except NotFound:
            raise NotFound(f"no such job: {job_id}") from None
        return job_id

    async def _tail(self, visible: Visibility) -> int:
        """The id of the newest event the caller may see (0 if none).

        The store has no "newest id" query yet, so this pages to the end.
        """
        after = 0
        while True:
            events = await self.api.store.list_events(
                visible_to=visible, after_id=after, limit=1000
            )
            if events:
                after = events[-1].id
            if len(events) < 1000:
                return after
