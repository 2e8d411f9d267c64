"""Jobs: create, update, get, list, delete, pause, resume and trigger, once for every
front end. Each write checks the caller completely (authorization, quotas, notify
targets, the SQL role rule, a script's readability) before anything is stored, then
changes the store and records its event in one transaction."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from uuid import UUID

from cronhive.auth import (
    Identity,
    check_can_schedule,
    check_run_as,
    parse_owner,
    quotas,
    resolve_owner,
)
from cronhive.engine import executions as new
from cronhive.errors import InvalidInput
from cronhive.model import Execution, Job, JobSpec
from cronhive.notify import check_notify, normalize
from cronhive.service import limits
from cronhive.service._base import Base

__all__ = ["Draft", "JobOps"]

_PREFIX_RE = re.compile(r"[A-Za-z0-9_.-]{0,100}")


@dataclass(frozen=True, kw_only=True)
class Draft:
    """A job as a client asked for it. `owner` is the owner requested ("" on create:
    the caller; "" on update: the job's own); `spec(owner)` reads the request into a
    JobSpec of the resolved owner (the front end's reading, e.g. api.validate)."""

    owner: str
    spec: Callable[[str], JobSpec]

    @classmethod
    def of(cls, spec: JobSpec) -> Draft:
        """A draft of a spec already read (a web form's change of one field)."""
        return cls(owner=spec.owner, spec=lambda owner: replace(spec, owner=owner))


class JobOps(Base):
    async def _checked(self, who: Identity, spec: JobSpec, before: JobSpec | None) -> JobSpec:
        """`spec` once everything about it is allowed; refused with our errors else."""
        owner = spec.owner
        if spec.schedule is not None and (before is None or before.schedule != spec.schedule):
            check_can_schedule(who)
            if spec.schedule.next_after(self.clock.now()) is None:
                # A new schedule that can never fire (a `once` time in the past) is a
                # mistake, not a job: refused rather than stored silent.
                raise InvalidInput(
                    f"schedule: {spec.schedule.expression} is in the past; it would never fire",
                    field="schedule",
                )
        check_run_as(who, owner, spec.run.run_as, self.policy)
        if spec.notify:
            await check_notify(spec, self.targets, self.store, self.visible(who))
        await self.check_sql(owner, spec.run)
        if spec.run.script is not None:
            spec = replace(spec, run=await self.bind_script(who, spec.run, owner=owner))
        now = self.clock.now()
        await quotas.check_job(self.store, self.policy, who, owner, spec, now=now, before=before)
        return spec

    async def create_job(self, who: Identity, draft: Draft) -> Job:
        owner = resolve_owner(who, draft.owner)
        spec = await self._checked(who, draft.spec(owner), None)
        now = self.clock.now()
        return await self.store.create_job(
            spec,
            next_fire_at=new.next_fire(spec, now),
            created_by=who.owner,
            now=now,
            event=self.event("job.created", spec.owner, f"{spec.name} by {who.user}"),
        )

    async def update_job(
        self, who: Identity, job_id: UUID, change: Callable[[JobSpec], Draft]
    ) -> Job:
        """The job with `change(current spec)` applied, checked as a new one would be
        (against the current spec: an unchanged schedule is not checked again)."""
        job = await self.visible_job(who, job_id)
        draft = change(job.spec)
        # An empty owner keeps the job's owner (it does not mean "the caller" here).
        owner = resolve_owner(who, draft.owner) if draft.owner else job.owner
        spec = await self._checked(who, draft.spec(owner), job.spec)
        now = self.clock.now()
        return await self.store.update_job(
            job.id,
            spec,
            next_fire_at=new.next_fire(spec, now),
            visible_to=self.visible(who),
            now=now,
            event=self.event(
                "job.updated", spec.owner, f"{spec.name} by {who.user}", job_id=job.id
            ),
        )

    async def get_job(self, who: Identity, job_id: UUID) -> Job:
        return await self.visible_job(who, job_id)

    async def list_jobs(
        self,
        who: Identity,
        *,
        owner: str | None = None,
        name_prefix: str | None = None,
        enabled: bool | None = None,
        after: tuple[str, str] | None = None,
        limit: int = 100,
    ) -> list[Job]:
        """Jobs by (owner, name) after `after`; `owner` and `name_prefix` narrow them."""
        if owner:
            parse_owner(owner)
        if name_prefix and not _PREFIX_RE.fullmatch(name_prefix):
            raise InvalidInput(
                "name_prefix: at most 100 characters of A-Z a-z 0-9 _ . -", field="name_prefix"
            )
        return await self.store.list_jobs(
            visible_to=self.visible(who),
            owner=owner or None,
            name_prefix=name_prefix or None,
            enabled=enabled,
            after=after,
            limit=limit,
        )

    async def delete_job(self, who: Identity, job_id: UUID) -> Job:
        """Deletes the job (its history stays); returns it as it was."""
        job = await self.visible_job(who, job_id)
        await self.store.delete_job(
            job.id,
            visible_to=self.visible(who),
            now=self.clock.now(),
            event=self.event("job.deleted", job.owner, f"{job.name} by {who.user}", job_id=job.id),
        )
        return job

    async def set_enabled(self, who: Identity, job_id: UUID, enabled: bool) -> Job:
        """Pauses (`enabled` False) or resumes the job."""
        job = await self.visible_job(who, job_id)
        now = self.clock.now()
        kind = "job.resumed" if enabled else "job.paused"
        return await self.store.set_enabled(
            job.id,
            enabled,
            next_fire_at=new.next_fire(replace(job.spec, enabled=enabled), now),
            visible_to=self.visible(who),
            now=now,
            event=self.event(kind, job.owner, f"{job.name} by {who.user}", job_id=job.id),
        )

    async def trigger(
        self,
        who: Identity,
        job_id: UUID,
        env: Mapping[str, str] | None = None,
        args: Sequence[str] = (),
    ) -> Execution:
        """A run of the job now, with this run's parameters (`env` over the job's, `args`
        after its command), held to the limits of a job's own command and env."""
        job = await self.visible_job(who, job_id)
        # The job's run_as grant may have been withdrawn since it was stored.
        check_run_as(who, job.owner, job.spec.run.run_as, self.policy)
        await quotas.check_new_run(self.store, self.policy, who, job.owner)
        env = dict(env or {})
        run = limits.parameters(job.spec.run, env, args)
        execution = new.triggered(job, self.clock.now(), run)
        message = f"{job.name} triggered by {who.user}" + new.parameters_note(env, args)
        return await self.store.enqueue(
            execution,
            event=self.event(
                "run.queued", job.owner, message, job_id=job.id, execution_id=execution.id
            ),
        )

    async def set_job_notify(
        self, who: Identity, job_id: UUID, rules: Mapping[str, Sequence[str]]
    ) -> Job:
        """The job with these notification triggers ({event: targets}) instead of its
        own: an update like any other (checked, with its event)."""
        notify = normalize({event: list(targets) for event, targets in rules.items()})
        return await self.update_job(
            who, job_id, lambda spec: Draft.of(replace(spec, notify=notify))
        )

    async def warning(self, job: Job) -> str:
        """Why the job's runs would wait (no live node carries its tags), or ""."""
        tags = job.spec.run.target_tags
        if not tags:
            return ""
        return new.unmatched_tags(
            tags, await self.store.list_nodes(now=self.clock.now()), self.clock.now()
        )
