"""ScriptService: store a script body once, read it back (owner and admins only).

Bodies are content-addressed (cronhive.blobs.scripts): uploading the same body twice
stores it once. Who may read one is the database's `scripts` table: the owners who
uploaded it, and the owner of a job that runs it. Anyone else gets NOT_FOUND, exactly as
for a digest that was never stored.
"""

from __future__ import annotations

import os
from dataclasses import replace

from grpclib.server import Stream

from cronhive.api._generated.cronhive.v1 import cronhive_grpc
from cronhive.api._generated.cronhive.v1 import cronhive_pb2 as pb
from cronhive.api._service import Api, Servicer
from cronhive.api.convert import script_pb
from cronhive.api.errors import guard
from cronhive.auth import resolve_owner
from cronhive.blobs import BlobStore
from cronhive.blobs import scripts as bodies
from cronhive.errors import CronhiveError, InvalidInput, NotFound
from cronhive.model import RunSpec, ScriptRef
from cronhive.store.base import Visibility

__all__ = ["ScriptService", "bind_script"]

MAX_NAME = 255


def _blobs(api: Api) -> BlobStore:
    if api.blobs is None:
        raise CronhiveError("this node has no blob store for scripts")
    return api.blobs


async def bind_script(api: Api, run: RunSpec, *, owner: str, visible: Visibility) -> RunSpec:
    """`run` with its script's name and size filled in, once the caller is known to be
    allowed to read the script (else NotFound); the job's owner may read it from then on
    (whoever runs a script may see it)."""
    if run.script is None:
        return run
    try:
        record = await api.store.find_script(run.script.digest, visible_to=visible)
    except NotFound:
        raise NotFound(f"no such script: {run.script.digest}") from None
    await api.store.add_script(
        record.digest, owner=owner, name=record.name, size=record.size, now=api.clock.now()
    )
    return replace(run, script=replace(run.script, name=record.name, size=record.size))


class ScriptService(Servicer, cronhive_grpc.ScriptServiceBase):
    async def UploadScript(self, stream: Stream[pb.UploadScriptRequest, pb.ScriptRef]) -> None:
        async with guard("ScriptService.UploadScript"):
            req, who, _ = await self.request(stream)
            owner = resolve_owner(who, req.owner)
            name = os.path.basename(req.name)[:MAX_NAME]
            if "\x00" in name:
                raise InvalidInput("name: contains NUL", field="name")
            digest = await bodies.upload(
                _blobs(self.api), req.body, max_bytes=self.api.script_max_bytes
            )
            size = len(req.body)
            await self.api.store.add_script(
                digest, owner=owner, name=name, size=size, now=self.api.clock.now()
            )
            await stream.send_message(
                script_pb(ScriptRef(digest=digest, interpreter=(), name=name, size=size))
            )

    async def GetScript(self, stream: Stream[pb.GetScriptRequest, pb.ScriptBody]) -> None:
        async with guard("ScriptService.GetScript"):
            req, _, visible = await self.request(stream)
            digest = bodies.check_digest(req.digest)
            try:
                record = await self.api.store.find_script(digest, visible_to=visible)
            except NotFound:
                raise NotFound(f"no such script: {digest}") from None
            body = await bodies.fetch(_blobs(self.api), digest)
            await stream.send_message(pb.ScriptBody(digest=digest, name=record.name, body=body))
