"""TokenService: the caller's personal access tokens (for the web UI and its JSON API).

A token belongs to the user of the client certificate that created it and carries that
certificate's groups, so signing in with it gives the same identity. Only a digest of the
secret is stored (cronhive.store.tokens); the text is returned once, by Create.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from uuid import UUID

from grpclib.server import Stream

from cronhive.api._generated.cronhive.v1 import cronhive_grpc
from cronhive.api._generated.cronhive.v1 import cronhive_pb2 as pb
from cronhive.api._service import Servicer
from cronhive.api.errors import guard
from cronhive.auth.identity import subject_of
from cronhive.errors import InvalidInput, NotFound
from cronhive.store.tokens import Token, new_token

__all__ = ["DEFAULT_DAYS", "MAX_DAYS", "TokenService", "token_pb"]

DEFAULT_DAYS = 90
MAX_DAYS = 3650
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")


def _ts(out: pb.Token, field: str, value: datetime | None) -> None:
    if value is not None:
        getattr(out, field).FromDatetime(value)


def token_pb(token: Token) -> pb.Token:
    out = pb.Token(id=str(token.id), name=token.name)
    for field in ("created_at", "expires_at", "last_used_at", "revoked_at"):
        _ts(out, field, getattr(token, field))
    return out


def _name(text: str, token_id: UUID) -> str:
    if not text:
        return f"token-{token_id.hex[:8]}"
    if not _NAME_RE.fullmatch(text):
        raise InvalidInput(
            "name: 1-64 characters of A-Z a-z 0-9 _ . @ -, starting with a letter or digit",
            field="name",
        )
    return text


class TokenService(Servicer, cronhive_grpc.TokenServiceBase):
    async def Create(self, stream: Stream[pb.CreateTokenRequest, pb.CreateTokenResponse]) -> None:
        async with guard("TokenService.Create"):
            req, who, _ = await self.request(stream)
            days = req.days if req.HasField("days") else DEFAULT_DAYS
            if days > MAX_DAYS:
                raise InvalidInput(f"days: at most {MAX_DAYS} (0 = never expires)", field="days")
            _, cert_groups = subject_of(stream.peer.cert())
            token_id, text, digest = new_token()
            now = self.api.clock.now()
            token = await self.api.store.create_token(
                Token(
                    id=token_id,
                    user=who.user,
                    groups=cert_groups,
                    name=_name(req.name, token_id),
                    digest=digest,
                    created_at=now,
                    expires_at=now + timedelta(days=days) if days else None,
                )
            )
            await self.event(kind="token.created", owner=who.owner, message=token.name)
            await stream.send_message(pb.CreateTokenResponse(token=token_pb(token), text=text))

    async def List(self, stream: Stream[pb.ListTokensRequest, pb.ListTokensResponse]) -> None:
        async with guard("TokenService.List"):
            _, who, _ = await self.request(stream)
            tokens = await self.api.store.list_tokens(who.user)
            await stream.send_message(pb.ListTokensResponse(tokens=[token_pb(t) for t in tokens]))

    async def Revoke(self, stream: Stream[pb.RevokeTokenRequest, pb.Token]) -> None:
        async with guard("TokenService.Revoke"):
            req, who, _ = await self.request(stream)
            token_id = await self._find(who.user, req.token)
            token = await self.api.store.revoke_token(who.user, token_id, now=self.api.clock.now())
            await self.event(kind="token.revoked", owner=who.owner, message=token.name)
            await stream.send_message(token_pb(token))

    async def _find(self, user: str, ref: str) -> UUID:
        """The id of `user`'s token named or numbered `ref` (a live one wins a name)."""
        try:
            return UUID(ref)
        except ValueError:
            pass
        named = [t for t in await self.api.store.list_tokens(user) if t.name == ref]
        if not named:
            raise NotFound(f"no such token: {ref[:64]!r}")
        live = [t for t in named if t.revoked_at is None]
        return (live or named)[-1].id
