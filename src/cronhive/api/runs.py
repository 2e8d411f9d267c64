"""RunService: ad-hoc runs, stop, status, history and live output.

Any node answers for any run: status and output come from the store, never from the
process, so a reader on node B follows a run on node A from its first byte.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from datetime import datetime
from uuid import UUID

from grpclib.const import Status
from grpclib.exceptions import GRPCError
from grpclib.server import Stream

from cronhive.api import validate
from cronhive.api._generated.cronhive.v1 import cronhive_grpc
from cronhive.api._generated.cronhive.v1 import cronhive_pb2 as pb
from cronhive.api._service import Api, Servicer, check_sql
from cronhive.api.convert import chunk_pb, execution_pb
from cronhive.api.errors import guard
from cronhive.auth import check_run_as, resolve_owner
from cronhive.engine import runs
from cronhive.engine.output import follow_output
from cronhive.errors import NotFound
from cronhive.model import Execution, RunState
from cronhive.model import Stream as OutStream
from cronhive.store.base import Visibility

__all__ = ["RunService"]

NODE_NAMES_TTL = 5.0  # seconds


class RunService(Servicer, cronhive_grpc.RunServiceBase):
    def __init__(self, api: Api) -> None:
        super().__init__(api)
        self._names: dict[UUID, str] = {}
        self._names_at = float("-inf")

    async def Start(self, stream: Stream[pb.StartRunRequest, pb.Execution]) -> None:
        async with guard("RunService.Start"):
            req, who, _ = await self.request(stream)
            owner = resolve_owner(who, req.owner)
            run = validate.run_spec(req)
            check_run_as(who, owner, run.run_as, self.api.policy)
            await check_sql(self.api, owner, run)
            execution = await self.api.store.enqueue(runs.adhoc(owner, run, self.api.clock.now()))
            await self.event(
                kind="run.queued",
                owner=owner,
                execution_id=execution.id,
                message=f"ad-hoc run started by {who.user}",
            )
            await stream.send_message(execution_pb(execution))

    async def Stop(self, stream: Stream[pb.StopRunRequest, pb.Execution]) -> None:
        async with guard("RunService.Stop"):
            req, who, visible = await self.request(stream)
            execution_id = await self._visible(req.id, visible)
            execution = await self.api.store.request_stop(
                execution_id,
                visible_to=visible,
                reason=f"stopped by {who.user}",
                now=self.api.clock.now(),
            )
            await stream.send_message(await self._pb(execution))

    async def GetStatus(self, stream: Stream[pb.GetStatusRequest, pb.Execution]) -> None:
        async with guard("RunService.GetStatus"):
            req, _, visible = await self.request(stream)
            execution = await self._execution(req.id, visible)
            await stream.send_message(await self._pb(execution))

    async def ListExecutions(
        self, stream: Stream[pb.ListExecutionsRequest, pb.ListExecutionsResponse]
    ) -> None:
        async with guard("RunService.ListExecutions"):
            req, _, visible = await self.request(stream)
            job_id = validate.uuid_of(req.job_id, field="job_id") if req.job_id else None
            states = validate.run_states(req.states)
            size = validate.page_size(req.page_size)
            token = validate.decode_token(req.page_token, 2)
            before = None
            if token:
                before = (
                    validate.instant_of(token[0], "page_token"),
                    validate.uuid_of(token[1], field="page_token"),
                )
            rows = await self._list(job_id, states, before, size + 1, visible)
            names = await self._node_names()
            reply = pb.ListExecutionsResponse(
                executions=[execution_pb(e, names) for e in rows[:size]]
            )
            if len(rows) > size:
                last = rows[size - 1]
                reply.next_page_token = validate.encode_token(
                    [last.queued_at.isoformat(), str(last.id)]
                )
            await stream.send_message(reply)

    async def StreamOutput(self, stream: Stream[pb.StreamOutputRequest, pb.OutputChunk]) -> None:
        async with guard("RunService.StreamOutput"):
            req, _, visible = await self.request(stream)
            execution_id = await self._visible(req.id, visible)
            streams = validate.stream_choice(req.stream)
            start = {OutStream.STDOUT: req.stdout_offset, OutStream.STDERR: req.stderr_offset}
            async for chunk in follow_output(
                self.api.store,
                self.api.hub,
                execution_id,
                visible_to=visible,
                streams=streams,
                follow=req.follow,
                closing=self.api.closing,
                poll=self.api.poll,
            ):
                skip = max(0, start[chunk.stream] - chunk.offset)
                if skip < len(chunk.data):
                    await stream.send_message(chunk_pb(chunk, skip))
            if req.follow and self.api.closing.is_set():
                # Ended by the server closing, not by the run: tell the client to call
                # again (elsewhere if need be).
                execution = await self.api.store.get_execution(execution_id, visible_to=visible)
                if not execution.state.terminal:
                    raise GRPCError(Status.UNAVAILABLE, "the server is shutting down; call again")

    # --- helpers -------------------------------------------------------------------

    async def _execution(self, text: str, visible: Visibility) -> Execution:
        execution_id = validate.uuid_of(text)
        try:
            return await self.api.store.get_execution(execution_id, visible_to=visible)
        except NotFound:
            raise NotFound(f"no such execution: {execution_id}") from None

    async def _visible(self, text: str, visible: Visibility) -> UUID:
        return (await self._execution(text, visible)).id

    async def _list(
        self,
        job_id: UUID | None,
        states: Collection[RunState] | None,
        before: tuple[datetime, UUID] | None,
        limit: int,
        visible: Visibility,
    ) -> list[Execution]:
        rows = await self.api.store.list_executions(
            visible_to=visible, job_id=job_id, states=states, before=before, limit=limit
        )
        if job_id is not None and not rows and before is None:
            # The history of a deleted job stays listable; an unknown or foreign job is
            # NOT_FOUND, as everywhere else.
            try:
                await self.api.store.get_job(job_id, visible_to=visible)
            except NotFound:
                raise NotFound(f"no such job: {job_id}") from None
        return rows

    async def _node_names(self, wanted: UUID | None = None) -> dict[UUID, str]:
        # Names change rarely and a status call is hot: re-read them at most every few
        # seconds, or when a run names a node not seen yet.
        now = time.monotonic()
        if now - self._names_at > NODE_NAMES_TTL or (wanted and wanted not in self._names):
            nodes = await self.api.store.list_nodes(now=self.api.clock.now())
            self._names = {n.id: n.name for n in nodes} | {
                k: v for k, v in self._names.items() if wanted != k
            }
            self._names_at = now
        return self._names

    async def _pb(self, execution: Execution) -> pb.Execution:
        names = await self._node_names(execution.node_id) if execution.node_id else {}
        return execution_pb(execution, names)
