"""Scripts: store a body once (content-addressed), read it back (owner and admins only).

Who may read one is the database's `scripts` table: the owners who uploaded it, and the
owner of a job that runs it. Anyone else gets NotFound, exactly as for a digest that was
never stored.
"""

from __future__ import annotations

import os

from cronhive.auth import Identity, resolve_owner
from cronhive.blobs import BlobStore
from cronhive.blobs import scripts as bodies
from cronhive.errors import CronhiveError, InvalidInput, NotFound
from cronhive.model import Job, ScriptRef
from cronhive.service._base import Base
from cronhive.store.base import ScriptRecord

__all__ = ["MAX_SCRIPT_NAME", "ScriptOps"]

MAX_SCRIPT_NAME = 255


class ScriptOps(Base):
    def _bodies(self) -> BlobStore:
        if self.blobs is None:
            raise CronhiveError("this node has no blob store for scripts")
        return self.blobs

    async def upload_script(self, who: Identity, owner: str, name: str, body: bytes) -> ScriptRef:
        owner = resolve_owner(who, owner)
        name = os.path.basename(name)[:MAX_SCRIPT_NAME]
        if "\x00" in name:
            raise InvalidInput("name: contains NUL", field="name")
        digest = await bodies.upload(self._bodies(), body, max_bytes=self.script_max_bytes)
        size = len(body)
        await self.store.add_script(
            digest,
            owner=owner,
            name=name,
            size=size,
            now=self.clock.now(),
            event=self.event("script.stored", owner, f"{name or digest[:16]} by {who.user}"),
        )
        return ScriptRef(digest=digest, interpreter=(), name=name, size=size)

    async def get_script(self, who: Identity, digest: str) -> tuple[ScriptRecord, bytes]:
        digest = bodies.check_digest(digest)
        record = await self._record(who, digest)
        return record, await bodies.fetch(self._bodies(), digest)

    async def job_script(self, who: Identity, job: Job) -> bytes:
        """The body of the script `job` runs, if `who` may read it (owner, admins)."""
        script = job.spec.run.script
        if script is None or self.blobs is None:
            raise NotFound("this job runs no stored script")
        return (await self.get_script(who, script.digest))[1]
