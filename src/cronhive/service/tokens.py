"""Personal access tokens (for the web UI and its JSON API) and the web's sign-in.

A token belongs to the user of the client certificate that created it and carries that
certificate's groups, so signing in with it gives the same identity. Only a digest of
the secret is stored (cronhive.store.tokens); the text is returned once, by create.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from datetime import datetime, timedelta
from uuid import UUID

from cronhive.auth import Identity
from cronhive.errors import InvalidInput, NotFound
from cronhive.service._base import Base
from cronhive.store.sessions import WebSession, session_digest
from cronhive.store.tokens import Token, new_token, parse_token

# The values the web's sign-in handles (defined with their storage, answered from here).
__all__ = [
    "DEFAULT_DAYS",
    "MAX_DAYS",
    "Token",
    "TokenOps",
    "WebSession",
    "parse_token",
    "session_digest",
]

DEFAULT_DAYS = 90
MAX_DAYS = 3650
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")


def _name(text: str, token_id: UUID) -> str:
    if not text:
        return f"token-{token_id.hex[:8]}"
    if not _NAME_RE.fullmatch(text):
        raise InvalidInput(
            "name: 1-64 characters of A-Z a-z 0-9 _ . @ -, starting with a letter or digit",
            field="name",
        )
    return text


class TokenOps(Base):
    async def create_token(
        self, who: Identity, *, name: str, days: int | None, groups: Collection[str]
    ) -> tuple[Token, str]:
        """A new token of the caller with `groups` (the certificate's); `days` None is
        DEFAULT_DAYS, 0 never expires. Returns it and its text (shown this once)."""
        days = DEFAULT_DAYS if days is None else days
        if days > MAX_DAYS:
            raise InvalidInput(f"days: at most {MAX_DAYS} (0 = never expires)", field="days")
        token_id, text, digest = new_token()
        now = self.clock.now()
        token = Token(
            id=token_id,
            user=who.user,
            groups=frozenset(groups),
            name=_name(name, token_id),
            digest=digest,
            created_at=now,
            expires_at=now + timedelta(days=days) if days else None,
        )
        event = self.event("token.created", who.owner, token.name)
        return await self.store.create_token(token, event=event), text

    async def list_tokens(self, who: Identity) -> list[Token]:
        return await self.store.list_tokens(who.user)

    async def revoke_token(self, who: Identity, ref: str) -> Token:
        """Revokes the caller's token with this id or name (a live one wins a name)."""
        token_id = await self._find(who.user, ref)
        named = [t for t in await self.store.list_tokens(who.user) if t.id == token_id]
        event = self.event("token.revoked", who.owner, named[0].name if named else ref[:64])
        return await self.store.revoke_token(who.user, token_id, now=self.clock.now(), event=event)

    async def _find(self, user: str, ref: str) -> UUID:
        try:
            return UUID(ref)
        except ValueError:
            pass
        named = [t for t in await self.store.list_tokens(user) if t.name == ref]
        if not named:
            raise NotFound(f"no such token: {ref[:64]!r}")
        live = [t for t in named if t.revoked_at is None]
        return (live or named)[-1].id

    # --- the web's sign-in (web._auth keeps the cookies and CSRF) ----------------------

    async def token_identity(self, token_id: UUID, digest: str) -> tuple[Token, Identity]:
        """The usable token with this id and digest and who it signs in as; NotFound
        alike for a missing, wrong, expired or revoked one."""
        token = await self.store.find_token(token_id, digest, now=self.clock.now())
        return token, self.policy.identity(token.user, token.groups)

    async def open_session(self, session: WebSession) -> WebSession:
        return await self.store.create_web_session(session, now=self.clock.now())

    async def find_session(self, digest: str) -> WebSession:
        return await self.store.find_web_session(digest, now=self.clock.now())

    async def close_session(self, digest: str) -> None:
        await self.store.delete_web_session(digest)

    def now(self) -> datetime:
        return self.clock.now()
