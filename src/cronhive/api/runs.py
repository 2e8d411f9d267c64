"""RunService: ad-hoc runs, stop, status, history and live output (the operations are
cronhive.service's; this reads the messages and answers them)."""

from __future__ import annotations

from datetime import UTC

from grpclib.server import Stream

from cronhive.api import validate
from cronhive.api._generated.cronhive.v1 import cronhive_grpc
from cronhive.api._generated.cronhive.v1 import cronhive_pb2 as pb
from cronhive.api._service import Servicer
from cronhive.api.convert import chunk_pb, run_pb
from cronhive.api.errors import guard
from cronhive.model import Stream as OutStream
from cronhive.service import RunFilter

__all__ = ["RunService"]


class RunService(Servicer, cronhive_grpc.RunServiceBase):
    async def Start(self, stream: Stream[pb.StartRunRequest, pb.Execution]) -> None:
        async with guard("RunService.Start"):
            req, who = await self.request(stream)
            execution = await self.svc.start_run(who, req.owner, validate.run_spec(req))
            await stream.send_message(run_pb(await self.svc.view(execution)))

    async def Stop(self, stream: Stream[pb.StopRunRequest, pb.Execution]) -> None:
        async with guard("RunService.Stop"):
            req, who = await self.request(stream)
            execution = await self.svc.stop_run(who, validate.uuid_of(req.id))
            await stream.send_message(run_pb(await self.svc.view(execution)))

    async def GetStatus(self, stream: Stream[pb.GetStatusRequest, pb.Execution]) -> None:
        async with guard("RunService.GetStatus"):
            req, who = await self.request(stream)
            execution = await self.svc.run_status(who, validate.uuid_of(req.id))
            await stream.send_message(run_pb(await self.svc.view(execution)))

    async def ListExecutions(
        self, stream: Stream[pb.ListExecutionsRequest, pb.ListExecutionsResponse]
    ) -> None:
        async with guard("RunService.ListExecutions"):
            req, who = await self.request(stream)
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
            wanted = RunFilter(
                job_id=job_id,
                states=states,
                since=req.since.ToDatetime(tzinfo=UTC) if req.HasField("since") else None,
                job_name=req.job_name or None,
            )
            rows, last = await self.svc.list_runs(
                who, wanted, owner=req.owner, node=req.node, before=before, limit=size
            )
            reply = pb.ListExecutionsResponse(
                executions=[run_pb(v) for v in await self.svc.views(rows)]
            )
            if last is not None:
                reply.next_page_token = validate.encode_token(
                    [last.queued_at.isoformat(), str(last.id)]
                )
            await stream.send_message(reply)

    async def StreamOutput(self, stream: Stream[pb.StreamOutputRequest, pb.OutputChunk]) -> None:
        async with guard("RunService.StreamOutput"):
            req, who = await self.request(stream)
            run_id = validate.uuid_of(req.id)
            streams = validate.stream_choice(req.stream)
            start = {OutStream.STDOUT: req.stdout_offset, OutStream.STDERR: req.stderr_offset}
            output = self.svc.output(
                who,
                run_id,
                streams=streams,
                follow=req.follow,
                closing=self.api.closing,
                start=start,
            )
            async for chunk in output:
                skip = max(0, start[chunk.stream] - chunk.offset)
                if skip < len(chunk.data):
                    await stream.send_message(chunk_pb(chunk, skip))
            # Ended by the server closing, not by the run: tell the client to call again
            # (elsewhere if need be).
            closed = req.follow and self.api.closing.is_set()
            if closed and not (await self.svc.run_status(who, run_id)).state.terminal:
                self.api.check_open()
