"""What every operation shares: the node's parts, the caller's view, the one way an
event is made, and the lookups that answer NotFound for what the caller may not see."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace
from typing import Any
from uuid import UUID

from cronhive.auth import Identity, Policy, visible_owners
from cronhive.blobs import BlobStore
from cronhive.blobs.scripts import DEFAULT_MAX_BYTES as DEFAULT_SCRIPT_MAX
from cronhive.engine.clock import Clock
from cronhive.engine.hub import Hub
from cronhive.errors import InvalidInput, NotFound
from cronhive.model import Event, Execution, Job, Node, RunSpec
from cronhive.notify import Targets
from cronhive.sqljobs import SqlJobs
from cronhive.store.base import ScriptRecord, Store, Visibility

# Notifications are hints: a follower also re-checks at this pace.
POLL_SECONDS = 1.0


@dataclass(kw_only=True, eq=False)
class Base:
    """The dependencies of the operations (one `Service` per node)."""

    store: Store
    clock: Clock
    hub: Hub
    policy: Policy
    targets: Targets = field(default_factory=Targets)  # what jobs may name in `notify`
    sql: SqlJobs | None = None  # the node's SQL target databases (None: SQL refused)
    blobs: BlobStore | None = None  # script bodies and archived output (None: none here)
    script_max_bytes: int = DEFAULT_SCRIPT_MAX
    poll: float = POLL_SECONDS
    # Node names, re-read at most every few seconds (a status call is hot).
    _names: dict[UUID, str] = field(default_factory=dict, repr=False)
    _nodes: list[Node] = field(default_factory=list, repr=False)
    _names_at: float = field(default=float("-inf"), repr=False)
    _names_lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)

    @staticmethod
    def visible(who: Identity) -> Visibility:
        return visible_owners(who)

    def event(self, kind: str, owner: str | None, message: str, **ids: Any) -> Event:
        """The event an action records with itself (`job_id=`, `execution_id=`)."""
        return Event(id=0, at=self.clock.now(), kind=kind, owner=owner, message=message, **ids)

    async def visible_job(self, who: Identity, job_id: UUID) -> Job:
        try:
            return await self.store.get_job(job_id, visible_to=self.visible(who))
        except NotFound:
            raise NotFound(f"no such job: {job_id}") from None

    async def visible_run(self, who: Identity, run_id: UUID) -> Execution:
        try:
            return await self.store.get_execution(run_id, visible_to=self.visible(who))
        except NotFound:
            raise NotFound(f"no such execution: {run_id}") from None

    async def check_sql(self, owner: str, run: RunSpec) -> None:
        """A SQL run's role rule, when a job is saved or a run started (each run checks
        it again when it starts): PermissionDenied (the caller named the role, so saying
        no reveals nothing); InvalidInput for a database this node does not configure."""
        if run.sql is None:
            return
        if self.sql is None:
            raise InvalidInput("sql: this node runs no SQL jobs (no [databases])", field="sql")
        await self.sql.check(owner, run.sql)

    async def bind_script(self, who: Identity, run: RunSpec, *, owner: str) -> RunSpec:
        """`run` with its script's name and size filled in, once the caller is known to
        be allowed to read the script (else NotFound); the job's owner may read it from
        then on (whoever runs a script may see it)."""
        if run.script is None:
            return run
        record = await self._record(who, run.script.digest)
        await self.store.add_script(
            record.digest, owner=owner, name=record.name, size=record.size, now=self.clock.now()
        )
        return replace(run, script=replace(run.script, name=record.name, size=record.size))

    async def _record(self, who: Identity, digest: str) -> ScriptRecord:
        try:
            return await self.store.find_script(digest, visible_to=self.visible(who))
        except NotFound:
            raise NotFound(f"no such script: {digest}") from None
