"""JobService: create, change, list, pause, resume, trigger and delete jobs.

Every RPC sees only the jobs of `visible_owners(caller)`; another owner's job answers
NOT_FOUND exactly like a missing id. Input is checked completely (api.validate, then the
authorization checks) before anything is written, so a refused request stores nothing.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from grpclib.server import Stream

from cronhive.api import validate
from cronhive.api._generated.cronhive.v1 import cronhive_grpc
from cronhive.api._generated.cronhive.v1 import cronhive_pb2 as pb
from cronhive.api._service import Servicer, check_sql
from cronhive.api.convert import execution_pb, job_pb, spec_pb
from cronhive.api.errors import guard
from cronhive.api.scripts import bind_script
from cronhive.auth import (
    Identity,
    check_can_schedule,
    check_run_as,
    parse_owner,
    quotas,
    resolve_owner,
    visible_owners,
)
from cronhive.engine import runs
from cronhive.engine.runs import next_fire
from cronhive.errors import InvalidInput, NotFound
from cronhive.model import Job, JobSpec
from cronhive.notify import check_notify
from cronhive.store.base import Visibility

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
_PREFIX_RE = re.compile(r"[A-Za-z0-9_.-]{0,100}")


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


class JobService(Servicer, cronhive_grpc.JobServiceBase):
    async def _checked_spec(
        self, who: Identity, msg: pb.Job, owner: str, before: JobSpec | None
    ) -> JobSpec:
        spec = validate.job_spec(msg, owner=owner)
        if spec.schedule is not None and (before is None or before.schedule != spec.schedule):
            check_can_schedule(who)
            if spec.schedule.next_after(self.api.clock.now()) is None:
                # A new schedule that can never fire (a `once` time in the past) is a
                # mistake, not a job: refused rather than stored silent.
                raise InvalidInput(
                    f"schedule: {spec.schedule.expression} is in the past; it would never fire",
                    field="schedule",
                )
        check_run_as(who, owner, spec.run.run_as, self.api.policy)
        if spec.notify:
            await check_notify(spec, self.api.targets, self.api.store, visible_owners(who))
        await check_sql(self.api, owner, spec.run)
        if spec.run.script is not None:
            run = await bind_script(self.api, spec.run, owner=owner, visible=visible_owners(who))
            spec = replace(spec, run=run)
        await quotas.check_job(
            self.api.store,
            self.api.policy,
            who,
            owner,
            spec,
            now=self.api.clock.now(),
            before=before,
        )
        return spec

    async def Create(self, stream: Stream[pb.CreateJobRequest, pb.Job]) -> None:
        async with guard("JobService.Create"):
            req, who, _ = await self.request(stream)
            owner = resolve_owner(who, req.job.owner)
            spec = await self._checked_spec(who, req.job, owner, None)
            now = self.api.clock.now()
            job = await self.api.store.create_job(
                spec, next_fire_at=next_fire(spec, now), created_by=who.owner, now=now
            )
            await self._changed(job, "job.created", who)
            await stream.send_message(await self._warned(job))

    async def Update(self, stream: Stream[pb.UpdateJobRequest, pb.Job]) -> None:
        async with guard("JobService.Update"):
            req, who, visible = await self.request(stream)
            job = await self._job(req.job.id, visible)
            merged = _merge(job.spec, req)
            # An empty owner keeps the job's owner (it does not mean "the caller" here).
            owner = resolve_owner(who, merged.owner) if merged.owner else job.owner
            spec = await self._checked_spec(who, merged, owner, job.spec)
            now = self.api.clock.now()
            job = await self.api.store.update_job(
                job.id, spec, next_fire_at=next_fire(spec, now), visible_to=visible, now=now
            )
            await self._changed(job, "job.updated", who)
            await stream.send_message(await self._warned(job))

    async def Get(self, stream: Stream[pb.GetJobRequest, pb.Job]) -> None:
        async with guard("JobService.Get"):
            req, _, visible = await self.request(stream)
            await stream.send_message(job_pb(await self._job(req.id, visible)))

    async def List(self, stream: Stream[pb.ListJobsRequest, pb.ListJobsResponse]) -> None:
        async with guard("JobService.List"):
            req, _, visible = await self.request(stream)
            size = validate.page_size(req.page_size)
            if req.owner:
                parse_owner(req.owner)
            if not _PREFIX_RE.fullmatch(req.name_prefix):
                raise InvalidInput(
                    "name_prefix: at most 100 characters of A-Z a-z 0-9 _ . -",
                    field="name_prefix",
                )
            token = validate.decode_token(req.page_token, 2)
            jobs = await self.api.store.list_jobs(
                visible_to=visible,
                owner=req.owner or None,
                name_prefix=req.name_prefix or None,
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
            req, who, visible = await self.request(stream)
            job = await self._job(req.id, visible)
            await self.api.store.delete_job(job.id, visible_to=visible, now=self.api.clock.now())
            await self._changed(job, "job.deleted", who)
            await stream.send_message(pb.DeleteJobResponse())

    async def Pause(self, stream: Stream[pb.PauseJobRequest, pb.Job]) -> None:
        async with guard("JobService.Pause"):
            await self._set_enabled(stream, False)

    async def Resume(self, stream: Stream[pb.ResumeJobRequest, pb.Job]) -> None:
        async with guard("JobService.Resume"):
            await self._set_enabled(stream, True)

    async def Trigger(self, stream: Stream[pb.TriggerJobRequest, pb.Execution]) -> None:
        async with guard("JobService.Trigger"):
            req, who, visible = await self.request(stream)
            job = await self._job(req.id, visible)
            # The job's run_as grant may have been withdrawn since it was stored.
            check_run_as(who, job.owner, job.spec.run.run_as, self.api.policy)
            await quotas.check_new_run(self.api.store, self.api.policy, who, job.owner)
            run = validate.parameters(job.spec.run, dict(req.env), req.args)
            now = self.api.clock.now()
            execution = await self.api.store.enqueue(runs.triggered(job, now, run))
            await self.event(
                kind="run.queued",
                owner=job.owner,
                job_id=job.id,
                execution_id=execution.id,
                message=f"{job.name} triggered by {who.user}"
                + runs.parameters_note(dict(req.env), list(req.args)),
            )
            msg = execution_pb(execution)
            msg.waiting = await self._unmatched(job)
            await stream.send_message(msg)

    # --- helpers -------------------------------------------------------------------

    async def _unmatched(self, job: Job) -> str:
        tags = job.spec.run.target_tags
        if not tags:
            return ""
        now = self.api.clock.now()
        return runs.unmatched_tags(tags, await self.api.store.list_nodes(now=now), now)

    async def _warned(self, job: Job) -> pb.Job:
        """The job as answered after a change, with a warning if its runs would wait."""
        msg = job_pb(job)
        msg.warning = await self._unmatched(job)
        return msg

    async def _job(self, job_id: str, visible: Visibility) -> Job:
        uuid = validate.uuid_of(job_id)
        try:
            return await self.api.store.get_job(uuid, visible_to=visible)
        except NotFound:
            raise NotFound(f"no such job: {uuid}") from None

    async def _set_enabled(self, stream: Stream[Any, pb.Job], enabled: bool) -> None:
        req, who, visible = await self.request(stream)
        job = await self._job(req.id, visible)
        now = self.api.clock.now()
        spec = replace(job.spec, enabled=enabled)
        job = await self.api.store.set_enabled(
            job.id, enabled, next_fire_at=next_fire(spec, now), visible_to=visible, now=now
        )
        await self._changed(job, "job.resumed" if enabled else "job.paused", who)
        await stream.send_message(job_pb(job))

    async def _changed(self, job: Job, kind: str, who: Identity) -> None:
        await self.event(
            kind=kind, owner=job.owner, job_id=job.id, message=f"{job.name} by {who.user}"
        )
