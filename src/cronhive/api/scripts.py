"""ScriptService: store a script body once, read it back (owner and admins only; the
rules are service.scripts')."""

from __future__ import annotations

from grpclib.server import Stream

from cronhive.api._generated.cronhive.v1 import cronhive_grpc
from cronhive.api._generated.cronhive.v1 import cronhive_pb2 as pb
from cronhive.api._service import Servicer
from cronhive.api.convert import script_pb
from cronhive.api.errors import guard

__all__ = ["ScriptService"]


class ScriptService(Servicer, cronhive_grpc.ScriptServiceBase):
    async def UploadScript(self, stream: Stream[pb.UploadScriptRequest, pb.ScriptRef]) -> None:
        async with guard("ScriptService.UploadScript"):
            req, who = await self.request(stream)
            ref = await self.svc.upload_script(who, req.owner, req.name, req.body)
            await stream.send_message(script_pb(ref))

    async def GetScript(self, stream: Stream[pb.GetScriptRequest, pb.ScriptBody]) -> None:
        async with guard("ScriptService.GetScript"):
            req, who = await self.request(stream)
            record, body = await self.svc.get_script(who, req.digest)
            await stream.send_message(
                pb.ScriptBody(digest=record.digest, name=record.name, body=body)
            )
