"""What the pages and the JSON API do, once: reads filtered by `visible_owners`, actions
checked by `cronhive.auth` (the same calls the gRPC services make).

A malformed id is reported exactly like a missing one, and so is anything the caller may
not see: `NotFound`, which both front ends answer with 404.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any
from uuid import UUID

from cronhive.api import validate  # the limits of a run's command and env, shared
from cronhive.auth import Identity, Policy, check_run_as, quotas, visible_owners
from cronhive.auth.authz import nodes_as_seen
from cronhive.blobs import BlobStore
from cronhive.blobs.scripts import fetch as fetch_script
from cronhive.engine import executions as made
from cronhive.engine.clock import Clock
from cronhive.engine.executions import next_fire
from cronhive.engine.hub import Hub
from cronhive.engine.output import follow_output
from cronhive.errors import NotFound
from cronhive.model import Delivery, Event, Execution, Job, Node, OutputChunk, RunState, Stream
from cronhive.store import Store
from cronhive.store.listing import RunFilter, filtered_runs, narrowed, node_ids

__all__ = ["Web"]

POLL_SECONDS = 1.0  # notifications are hints: a follower re-checks at this pace anyway


def uuid_or_404(text: str, what: str) -> UUID:
    try:
        return UUID(text)
    except ValueError:
        raise NotFound(f"no such {what}") from None


@dataclass(kw_only=True)
class Web:
    """The web front end's dependencies (one per node) and its operations."""

    store: Store
    clock: Clock
    hub: Hub
    policy: Policy
    poll: float = POLL_SECONDS
    # Set when the server closes: live tails end instead of holding the shutdown up.
    closing: asyncio.Event = field(default_factory=asyncio.Event)
    blobs: BlobStore | None = None  # archived output (and script bodies)

    # --- reads -------------------------------------------------------------------------

    async def jobs(
        self, who: Identity, *, after: tuple[str, str] | None = None, limit: int = 100
    ) -> list[Job]:
        return await self.store.list_jobs(visible_to=visible_owners(who), after=after, limit=limit)

    async def job(self, who: Identity, job_id: str) -> Job:
        uuid = uuid_or_404(job_id, "job")
        try:
            return await self.store.get_job(uuid, visible_to=visible_owners(who))
        except NotFound:
            raise NotFound("no such job") from None

    async def script(self, who: Identity, job: Job) -> bytes:
        """The body of the script `job` runs, if `who` may read it (owner, admins)."""
        script = job.spec.run.script
        if script is None or self.blobs is None:
            raise NotFound("this job runs no stored script")
        try:
            await self.store.find_script(script.digest, visible_to=visible_owners(who))
        except NotFound:
            raise NotFound("no such script") from None
        return await fetch_script(self.blobs, script.digest)

    async def notifications(self, who: Identity, job: Job, limit: int = 20) -> list[Delivery]:
        """The job's latest notifications (webhooks, mails, chained runs) and their state."""
        return await self.store.list_deliveries(
            visible_to=visible_owners(who), job_id=job.id, limit=limit
        )

    async def all_notifications(self, who: Identity, limit: int = 100) -> list[Delivery]:
        return await self.store.list_deliveries(visible_to=visible_owners(who), limit=limit)

    async def retry_notification(self, who: Identity, delivery_id: str) -> Delivery:
        uuid = uuid_or_404(delivery_id, "notification")
        d = await self.store.retry_delivery(
            uuid, visible_to=visible_owners(who), now=self.clock.now()
        )
        await self.store.add_event(
            Event(
                id=0,
                at=self.clock.now(),
                kind="notification.retried",
                owner=d.owner,
                job_id=d.job_id,
                execution_id=d.execution_id,
                message=f"{d.event} to {d.target} queued again by {who.user} (web)",
            )
        )
        return d

    async def runs(
        self,
        who: Identity,
        *,
        job: Job | None = None,
        states: Collection[RunState] | None = None,
        before: tuple[datetime, UUID] | None = None,
        limit: int = 50,
    ) -> list[Execution]:
        return await self.store.list_executions(
            visible_to=visible_owners(who),
            job_id=None if job is None else job.id,
            states=states,
            before=before,
            limit=limit,
        )

    async def run_list(
        self,
        who: Identity,
        wanted: RunFilter,
        *,
        owner: str | None = None,
        node: str | None = None,
        before: tuple[datetime, UUID] | None = None,
        limit: int = 50,
    ) -> tuple[list[Execution], Execution | None]:
        """The Runs page: runs filtered as `cronhive runs` filters them (store.listing)."""
        visible = visible_owners(who)
        if owner:
            visible = narrowed(visible, owner)
        if node:
            wanted = replace(wanted, nodes=await node_ids(self.store, node, self.clock.now()))
        return await filtered_runs(
            self.store, wanted, visible_to=visible, before=before, size=limit
        )

    async def run(self, who: Identity, run_id: str) -> Execution:
        uuid = uuid_or_404(run_id, "run")
        try:
            return await self.store.get_execution(uuid, visible_to=visible_owners(who))
        except NotFound:
            raise NotFound("no such run") from None

    async def nodes(self, who: Identity | None = None) -> list[Node]:
        """Every node; with ``who``, as that caller may see them (auth.nodes_as_seen: only
        admins see other owners' running counts)."""
        nodes = await self.store.list_nodes(now=self.clock.now())
        if who is None:
            return nodes
        visible = visible_owners(who)
        running: list[Execution] = []
        if visible is not None:
            running = await self.store.list_executions(
                visible_to=visible, states={RunState.RUNNING}, limit=100_000
            )
        return nodes_as_seen(nodes, visible, running)

    async def node_names(self) -> dict[UUID, str]:
        return {n.id: n.name for n in await self.nodes()}

    # --- actions -----------------------------------------------------------------------

    async def trigger(
        self,
        who: Identity,
        job: Job,
        env: Mapping[str, str] | None = None,
        args: Sequence[str] = (),
    ) -> Execution:
        """A run of `job` now, with this run's parameters (env over the job's, args after
        its command), held to the same limits as the gRPC API's (api.validate)."""
        # The job's run_as grant may have been withdrawn since it was stored.
        check_run_as(who, job.owner, job.spec.run.run_as, self.policy)
        await quotas.check_new_run(self.store, self.policy, who, job.owner)
        run = validate.parameters(job.spec.run, env or {}, args)
        execution = await self.store.enqueue(made.triggered(job, self.clock.now(), run))
        note = made.parameters_note(env or {}, args)
        await self._event(
            "run.queued", job, execution.id, f"{job.name} triggered by {who.user} (web){note}"
        )
        return execution

    async def set_enabled(self, who: Identity, job: Job, enabled: bool) -> Job:
        now = self.clock.now()
        spec = replace(job.spec, enabled=enabled)
        job = await self.store.set_enabled(
            job.id,
            enabled,
            next_fire_at=next_fire(spec, now),
            visible_to=visible_owners(who),
            now=now,
        )
        kind = "job.resumed" if enabled else "job.paused"
        await self._event(kind, job, None, f"{job.name} by {who.user} (web)")
        return job

    async def stop(self, who: Identity, execution: Execution) -> Execution:
        return await self.store.request_stop(
            execution.id,
            visible_to=visible_owners(who),
            reason=f"stopped by {who.user}",
            now=self.clock.now(),
        )

    async def _event(self, kind: str, job: Job, execution_id: UUID | None, message: str) -> None:
        fields: dict[str, Any] = {"job_id": job.id, "execution_id": execution_id}
        await self.store.add_event(
            Event(id=0, at=self.clock.now(), kind=kind, owner=job.owner, message=message, **fields)
        )

    # --- output ------------------------------------------------------------------------

    async def output(
        self,
        who: Identity,
        execution: Execution,
        *,
        streams: Collection[Stream],
        after_seq: int = -1,
        follow: bool = False,
    ) -> AsyncGenerator[OutputChunk, None]:
        """The run's output chunks after `after_seq`, in order; with `follow`, also those
        still to come, ending once the run is terminal and everything is read (or the
        server closes). Shared with the gRPC StreamOutput (`engine.output`)."""
        async for chunk in follow_output(
            self.store,
            self.hub,
            execution.id,
            visible_to=visible_owners(who),
            streams=streams,
            after_seq=after_seq,
            follow=follow,
            closing=self.closing,
            poll=self.poll,
            blobs=self.blobs,
        ):
            yield chunk
