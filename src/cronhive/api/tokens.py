"""TokenService: the caller's personal access tokens (service.tokens; the text of a new
one is answered once, by Create)."""

from __future__ import annotations

from datetime import datetime

from grpclib.server import Stream

from cronhive.api._generated.cronhive.v1 import cronhive_grpc
from cronhive.api._generated.cronhive.v1 import cronhive_pb2 as pb
from cronhive.api._service import Servicer
from cronhive.api.errors import guard
from cronhive.auth.identity import subject_of
from cronhive.service.tokens import DEFAULT_DAYS, MAX_DAYS, Token

__all__ = ["DEFAULT_DAYS", "MAX_DAYS", "TokenService", "token_pb"]


def _ts(out: pb.Token, field: str, value: datetime | None) -> None:
    if value is not None:
        getattr(out, field).FromDatetime(value)


def token_pb(token: Token) -> pb.Token:
    out = pb.Token(id=str(token.id), name=token.name)
    for field in ("created_at", "expires_at", "last_used_at", "revoked_at"):
        _ts(out, field, getattr(token, field))
    return out


class TokenService(Servicer, cronhive_grpc.TokenServiceBase):
    async def Create(self, stream: Stream[pb.CreateTokenRequest, pb.CreateTokenResponse]) -> None:
        async with guard("TokenService.Create"):
            req, who = await self.request(stream)
            _, cert_groups = subject_of(stream.peer.cert())
            token, text = await self.svc.create_token(
                who,
                name=req.name,
                days=req.days if req.HasField("days") else None,
                groups=cert_groups,
            )
            await stream.send_message(pb.CreateTokenResponse(token=token_pb(token), text=text))

    async def List(self, stream: Stream[pb.ListTokensRequest, pb.ListTokensResponse]) -> None:
        async with guard("TokenService.List"):
            _, who = await self.request(stream)
            tokens = await self.svc.list_tokens(who)
            await stream.send_message(pb.ListTokensResponse(tokens=[token_pb(t) for t in tokens]))

    async def Revoke(self, stream: Stream[pb.RevokeTokenRequest, pb.Token]) -> None:
        async with guard("TokenService.Revoke"):
            req, who = await self.request(stream)
            await stream.send_message(token_pb(await self.svc.revoke_token(who, req.token)))
