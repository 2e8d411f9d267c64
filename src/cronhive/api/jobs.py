"""JobService: create, change, list, pause, resume, trigger and delete jobs (the
operations are cronhive.service's; this reads the messages and answers them).

Every RPC sees only the jobs of `visible_owners(caller)`; another owner's job answers
NOT_FOUND exactly like a missing id. Input is checked completely (api.validate, then the
service's checks) before anything is written, so a refused request stores nothing.
"""

from __future__ import annotations

from typing import Any

from grpclib.server import Stream

from cronhive.api import validate
from cronhive.api._generated.cronhive.v1 import cronhive_grpc
from cronhive.api._generated.cronhive.v1 import cronhive_pb2 as pb
from cronhive.api._service import Servicer
from cronhive.api.convert import job_pb, run_pb, spec_pb
from cronhive.api.errors import guard
from cronhive.errors import InvalidInput
from cronhive.model import Job, JobSpec
from cronhive.service import Draft

__all__ = ["SPEC_FIELDS", "JobService"]

# The Job fields a client may set (Create) or name in an update mask.
SPEC_FIELDS = frozenset(
    {
        "name",
        "owner",
        "command",
        "shell",
        "env",
        "cwd",
        "schedule",
        "enabled",
        "timeout_seconds",
        "retry",
        "concurrency",
        "misfire",
        "misfire_grace_seconds",
        "target_tags",
        "description",
        "run_as",
        "output_cap_bytes",
        "notify",
        "sql",
        "script",
        "limits",
    }
)


def _copy_field(src: Any, dst: Any, name: str) -> None:
    # Any: protobuf's stubs type field names as literals; `name` is checked by the caller.
    field = pb.Job.DESCRIPTOR.fields_by_name[name]
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        getattr(dst, name).clear()
        getattr(dst, name).update(getattr(src, name))
    elif field.is_repeated:
        del getattr(dst, name)[:]
        getattr(dst, name).extend(getattr(src, name))
    elif field.has_presence and not src.HasField(name):
        dst.ClearField(name)  # absent in the request: absent after (e.g. no timeout)
    elif field.message_type is not None:
        getattr(dst, name).CopyFrom(getattr(src, name))
    else:
        setattr(dst, name, getattr(src, name))


def _merge(current: JobSpec, request: pb.UpdateJobRequest) -> pb.Job:
    """The job as it will be: current spec fields, those named in the mask replaced."""
    paths = list(request.update_mask.paths) if request.HasField("update_mask") else []
    for path in paths:
        if path not in SPEC_FIELDS:
            raise InvalidInput(
                f"update_mask: {path[:60]!r} is not a field a client may change",
                field="update_mask",
            )
    merged = spec_pb(current)
    for name in paths or sorted(SPEC_FIELDS):
        _copy_field(request.job, merged, name)
    return merged


def _draft(msg: pb.Job) -> Draft:
    return Draft(owner=msg.owner, spec=lambda owner: validate.job_spec(msg, owner=owner))


class JobService(Servicer, cronhive_grpc.JobServiceBase):
    async def Create(self, stream: Stream[pb.CreateJobRequest, pb.Job]) -> None:
        async with guard("JobService.Create"):
            req, who = await self.request(stream)
            job = await self.svc.create_job(who, _draft(req.job))
            await stream.send_message(await self._warned(job))

    async def Update(self, stream: Stream[pb.UpdateJobRequest, pb.Job]) -> None:
        async with guard("JobService.Update"):
            req, who = await self.request(stream)
            job_id = validate.uuid_of(req.job.id)
            job = await self.svc.update_job(who, job_id, lambda spec: _draft(_merge(spec, req)))
            await stream.send_message(await self._warned(job))

    async def Get(self, stream: Stream[pb.GetJobRequest, pb.Job]) -> None:
        async with guard("JobService.Get"):
            req, who = await self.request(stream)
            await stream.send_message(job_pb(await self.svc.get_job(who, validate.uuid_of(req.id))))

    async def List(self, stream: Stream[pb.ListJobsRequest, pb.ListJobsResponse]) -> None:
        async with guard("JobService.List"):
            req, who = await self.request(stream)
            size = validate.page_size(req.page_size)
            token = validate.decode_token(req.page_token, 2)
            jobs = await self.svc.list_jobs(
                who,
                owner=req.owner,
                name_prefix=req.name_prefix,
                enabled=req.enabled if req.HasField("enabled") else None,
                after=(token[0], token[1]) if token else None,
                limit=size + 1,
            )
            reply = pb.ListJobsResponse(jobs=[job_pb(j) for j in jobs[:size]])
            if len(jobs) > size:
                reply.next_page_token = validate.encode_token(
                    [jobs[size - 1].owner, jobs[size - 1].name]
                )
            await stream.send_message(reply)

    async def Delete(self, stream: Stream[pb.DeleteJobRequest, pb.DeleteJobResponse]) -> None:
        async with guard("JobService.Delete"):
            req, who = await self.request(stream)
            await self.svc.delete_job(who, validate.uuid_of(req.id))
            await stream.send_message(pb.DeleteJobResponse())

    async def Pause(self, stream: Stream[pb.PauseJobRequest, pb.Job]) -> None:
        async with guard("JobService.Pause"):
            req, who = await self.request(stream)
            job = await self.svc.set_enabled(who, validate.uuid_of(req.id), False)
            await stream.send_message(job_pb(job))

    async def Resume(self, stream: Stream[pb.ResumeJobRequest, pb.Job]) -> None:
        async with guard("JobService.Resume"):
            req, who = await self.request(stream)
            job = await self.svc.set_enabled(who, validate.uuid_of(req.id), True)
            await stream.send_message(job_pb(job))

    async def Trigger(self, stream: Stream[pb.TriggerJobRequest, pb.Execution]) -> None:
        async with guard("JobService.Trigger"):
            req, who = await self.request(stream)
            job_id = validate.uuid_of(req.id)
            run = await self.svc.trigger(who, job_id, dict(req.env), list(req.args))
            await stream.send_message(run_pb(await self.svc.view(run)))

    async def _warned(self, job: Job) -> pb.Job:
        """The job as answered after a change, with a warning if its runs would wait."""
        msg = job_pb(job)
        msg.warning = await self.svc.warning(job)
        return msg
