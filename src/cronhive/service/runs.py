"""Runs: start one ad hoc, stop, status, list and follow its output, once for every
front end. Status and output come from the store, never from the process, so any node
answers for any run (a reader on node B follows a run on node A from its first byte)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Collection, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from uuid import UUID

from cronhive.auth import Identity, check_run_as, parse_owner, quotas, resolve_owner
from cronhive.engine import executions as new
from cronhive.engine.output import follow_output
from cronhive.model import Execution, Node, OutputChunk, RunSpec, RunState, Stream
from cronhive.service._base import Base
from cronhive.service._listing import RunFilter, filtered_runs, narrowed, node_ids

__all__ = ["NODE_NAMES_TTL", "RunOps", "RunView"]

NODE_NAMES_TTL = 5.0  # seconds


@dataclass(frozen=True, kw_only=True)
class RunView:
    """A run as answered: its output sizes so far (a running run's end is not recorded
    yet), the name of its node, and why a queued run may wait ("" when it need not)."""

    execution: Execution
    node_name: str | None
    waiting: str


class RunOps(Base):
    async def start_run(self, who: Identity, owner: str, run: RunSpec) -> Execution:
        """An ad-hoc run of `run`, owned by `owner` ("" = the caller)."""
        owner = resolve_owner(who, owner)
        check_run_as(who, owner, run.run_as, self.policy)
        await self.check_sql(owner, run)
        await quotas.check_new_run(self.store, self.policy, who, owner)
        run = await self.bind_script(who, run, owner=owner)
        execution = new.adhoc(owner, run, self.clock.now())
        message = f"ad-hoc run started by {who.user}"
        return await self.store.enqueue(
            execution,
            event=self.event("run.queued", owner, message, execution_id=execution.id),
        )

    async def stop_run(self, who: Identity, run_id: UUID) -> Execution:
        """Queued: stopped at once; running: its node is asked to stop it; ended: as is."""
        run = await self.visible_run(who, run_id)
        reason = f"stopped by {who.user}"
        return await self.store.request_stop(
            run.id,
            visible_to=self.visible(who),
            reason=reason,
            now=self.clock.now(),
            event=self.event("run.stop", run.owner, reason, job_id=run.job_id, execution_id=run.id),
        )

    async def run_status(self, who: Identity, run_id: UUID) -> Execution:
        return await self.visible_run(who, run_id)

    async def list_runs(
        self,
        who: Identity,
        wanted: RunFilter,
        *,
        owner: str | None = None,
        node: str | None = None,
        before: tuple[datetime, UUID] | None = None,
        limit: int = 50,
    ) -> tuple[list[Execution], Execution | None]:
        """Up to `limit` matching runs, newest first, and the row to continue after."""
        visible = self.visible(who)
        if owner:
            parse_owner(owner)
            visible = narrowed(visible, owner)
        if node:
            wanted = replace(wanted, nodes=await node_ids(self.store, node, self.clock.now()))
        return await filtered_runs(
            self.store, wanted, visible_to=visible, before=before, size=limit
        )

    async def output(
        self,
        who: Identity,
        run_id: UUID,
        *,
        streams: Collection[Stream],
        after_seq: int = -1,
        follow: bool = False,
        closing: asyncio.Event,
        start: Mapping[Stream, int] | None = None,
    ) -> AsyncGenerator[OutputChunk, None]:
        """The run's output chunks after `after_seq`, in order; with `follow`, also those
        still to come, ending once the run has ended and everything is read, or once
        `closing` is set (the front end's shutdown). `start` skips chunks ending before
        these byte offsets."""
        run = await self.visible_run(who, run_id)
        async for chunk in follow_output(
            self.store,
            self.hub,
            run.id,
            visible_to=self.visible(who),
            streams=streams,
            after_seq=after_seq,
            follow=follow,
            closing=closing,
            poll=self.poll,
            blobs=self.blobs,
            start=start,
        ):
            yield chunk

    # --- how runs are shown ------------------------------------------------------------

    async def node_list(self, wanted: UUID | None = None) -> list[Node]:
        """The nodes as read at most NODE_NAMES_TTL ago (or now, when a run names a node
        not seen yet)."""
        async with self._names_lock:
            now = time.monotonic()
            if now - self._names_at > NODE_NAMES_TTL or (wanted and wanted not in self._names):
                nodes = await self.store.list_nodes(now=self.clock.now())
                # Names seen once are kept: a run's node stays named after its row is gone.
                self._names = self._names | {n.id: n.name for n in nodes}
                self._nodes = nodes
                self._names_at = now
            return self._nodes

    async def node_names(self) -> dict[UUID, str]:
        await self.node_list()
        return self._names

    async def view(self, execution: Execution) -> RunView:
        """`execution` as answered (see `RunView`)."""
        nodes = await self.node_list(execution.node_id)
        waiting = ""
        if execution.state is RunState.QUEUED:
            waiting = new.unmatched_tags(execution.run.target_tags, nodes, self.clock.now())
        if execution.state is RunState.RUNNING or (
            execution.state is RunState.LOST and not execution.stdout_bytes + execution.stderr_bytes
        ):
            # The counts are recorded when a run ends; until then (or for a run lost with
            # its node) the stored output says how much there is.
            sizes = await self.store.output_sizes(execution.id)
            execution = replace(
                execution,
                stdout_bytes=max(execution.stdout_bytes, sizes.get(Stream.STDOUT, 0)),
                stderr_bytes=max(execution.stderr_bytes, sizes.get(Stream.STDERR, 0)),
            )
        name = self._names.get(execution.node_id) if execution.node_id else None
        return RunView(execution=execution, node_name=name, waiting=waiting)

    async def views(self, executions: list[Execution]) -> list[RunView]:
        """Many runs as answered in a listing (no live sizes: one read for the page)."""
        nodes = await self.node_list()
        now = self.clock.now()
        return [
            RunView(
                execution=e,
                node_name=self._names.get(e.node_id) if e.node_id else None,
                waiting=new.unmatched_tags(e.run.target_tags, nodes, now)
                if e.state is RunState.QUEUED
                else "",
            )
            for e in executions
        ]
