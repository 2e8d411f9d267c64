"""Nodes and events: what the cluster is and what happened, as the caller may see it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from uuid import UUID

from cronhive.auth import Identity
from cronhive.auth.authz import nodes_as_seen
from cronhive.engine.output import wait_any
from cronhive.errors import CronhiveError, InvalidInput
from cronhive.model import Event, Execution, Node, RunState
from cronhive.service._base import Base

__all__ = ["EVENT_BATCH", "ClusterOps"]

EVENT_BATCH = 500
MAX_RUNNING = 100_000  # runs of one caller counted; far above any cluster's capacity


class ClusterOps(Base):
    async def database_answers(self) -> bool:
        """Whether the database answers now (a health check's question)."""
        try:
            await self.store.database_time()
        except CronhiveError:
            return False
        return True

    async def list_nodes(self, who: Identity) -> list[Node]:
        """Every node; only admins see how many runs each runs, anyone else how many of
        theirs (auth.nodes_as_seen)."""
        nodes = await self.store.list_nodes(now=self.clock.now())
        visible = self.visible(who)
        running: list[Execution] = []
        if visible is not None:
            running = await self.store.list_executions(
                visible_to=visible, states={RunState.RUNNING}, limit=MAX_RUNNING
            )
        return nodes_as_seen(nodes, visible, running)

    async def events(
        self,
        who: Identity,
        *,
        job_id: UUID | None = None,
        after_id: int | None = None,
        follow: bool = True,
        closing: asyncio.Event,
    ) -> AsyncGenerator[Event, None]:
        """Events the caller may see, oldest first, after `after_id` (None: only those
        from now on), of one job if `job_id`; with `follow`, then live until `closing`.
        A user never receives an event of an owner they may not see; cluster events (no
        owner) reach admins only."""
        if job_id is not None:
            await self.visible_job(who, job_id)
        if after_id is not None and after_id < 0:
            raise InvalidInput("after_id: must be >= 0", field="after_id")
        visible = self.visible(who)
        after = await self._tail(who) if after_id is None else after_id
        with self.hub.subscribe("events") as wake:
            while True:
                wake.clear()
                found = await self.store.list_events(
                    visible_to=visible, after_id=after, limit=EVENT_BATCH
                )
                for event in found:
                    after = event.id
                    if job_id is None or event.job_id == job_id:
                        yield event
                if len(found) < EVENT_BATCH:
                    if not follow or closing.is_set():
                        return
                    await wait_any([wake, closing], self.poll)
                    if closing.is_set():
                        return

    async def _tail(self, who: Identity) -> int:
        """The id of the newest event the caller may see (0 if none).

        The store has no "newest id" query yet, so this pages to the end.
        """
        after = 0
        while True:
            found = await self.store.list_events(
                visible_to=self.visible(who), after_id=after, limit=1000
            )
            if found:
                after = found[-1].id
            if len(found) < 1000:
                return after
