"""Who is asking, for every web request: sessions, tokens and CSRF.

- A personal access token (``Authorization: Bearer chv_...``) authenticates a JSON call
  on its own; no cookie is involved, so no CSRF check is needed.
- The sign-in page exchanges a token for a session: a random id in a cookie that is
  HttpOnly, Secure and SameSite=Strict, held server-side in the database (only the id's
  SHA-256, store.sessions) with an expiry no later than the token's: every node serves
  it, a node restart signs nobody out, signing out ends it everywhere. Every request
  re-checks the token in the store, so revoking it ends its sessions at once.
- Every state-changing request on a session carries the session's CSRF token (a form
  field ``csrf`` or the ``X-CSRF-Token`` header), compared in constant time; else 403.

Hypercorn does not pass the TLS peer certificate to the application (its ASGI scope has
no ``tls`` extension), so a client certificate offered to the web port is verified in
the handshake but cannot sign in by itself: tokens are the way in.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from starlette.requests import Request

from cronhive.auth import Identity
from cronhive.errors import NotFound
from cronhive.service import Service
from cronhive.service.tokens import WebSession, parse_token, session_digest

__all__ = ["COOKIE", "SESSION_TTL", "Session", "Sessions", "Unauthenticated"]

COOKIE = "cronhive_session"
PRE_COOKIE = "cronhive_signin"  # double-submit CSRF for the sign-in form itself
SESSION_TTL = timedelta(hours=12)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class Unauthenticated(Exception):
    """No usable session or token (answered 401, or a redirect to the sign-in page)."""


class CsrfFailed(Exception):
    """A state-changing request on a session without its CSRF token (answered 403)."""


@dataclass(frozen=True, kw_only=True)
class Session:
    id: str
    token_id: UUID
    digest: str
    csrf: str
    expires_at: datetime


@dataclass(frozen=True, kw_only=True)
class Caller:
    """An authenticated request: the identity and, for a session, its CSRF token."""

    identity: Identity
    session: Session | None = None


class Sessions:
    """Sign-in sessions, kept in the database (service.tokens): a browser may talk to
    any node."""

    def __init__(self, service: Service) -> None:
        self.service = service

    async def sign_in(self, token_text: str) -> Session:
        """A new session for a usable token; NotFound for anything else."""
        token_id, digest = parse_token(token_text)
        token, _ = await self.service.token_identity(token_id, digest)
        now = self.service.now()
        expires = now + SESSION_TTL
        if token.expires_at is not None:
            expires = min(expires, token.expires_at)
        session = Session(
            id=secrets.token_urlsafe(32),
            token_id=token_id,
            digest=digest,
            csrf=secrets.token_urlsafe(32),
            expires_at=expires,
        )
        await self.service.open_session(
            WebSession(
                digest=session_digest(session.id),
                token_id=token_id,
                token_digest=digest,
                csrf=session.csrf,
                created_at=now,
                expires_at=expires,
            )
        )
        return session

    async def sign_out(self, session_id: str) -> None:
        await self.service.close_session(session_digest(session_id))

    async def _session(self, session_id: str) -> Session | None:
        if not session_id:
            return None
        try:
            stored = await self.service.find_session(session_digest(session_id))
        except NotFound:
            return None
        return Session(
            id=session_id,
            token_id=stored.token_id,
            digest=stored.token_digest,
            csrf=stored.csrf,
            expires_at=stored.expires_at,
        )

    async def _identity(self, token_id: UUID, digest: str) -> Identity:
        return (await self.service.token_identity(token_id, digest))[1]

    async def caller(self, request: Request) -> Caller:
        """The caller of `request`. Raises Unauthenticated, or CsrfFailed for an unsafe
        method on a session without the matching CSRF token."""
        header = request.headers.get("authorization", "")
        if header:
            scheme, _, text = header.partition(" ")
            if scheme.lower() != "bearer":
                raise Unauthenticated("use Authorization: Bearer <token>")
            try:
                return Caller(identity=await self._identity(*parse_token(text)))
            except NotFound:
                raise Unauthenticated("unknown, expired or revoked token") from None
        session = await self._session(request.cookies.get(COOKIE, ""))
        if session is None:
            raise Unauthenticated("not signed in")
        try:
            identity = await self._identity(session.token_id, session.digest)
        except NotFound:
            await self.sign_out(session.id)
            raise Unauthenticated("the token of this session was revoked or expired") from None
        if request.method not in SAFE_METHODS:
            await check_csrf(request, session.csrf)
        return Caller(identity=identity, session=session)


async def check_csrf(request: Request, expected: str) -> None:
    """Raises CsrfFailed unless the request carries `expected` (header or form field)."""
    given = request.headers.get("x-csrf-token", "")
    if not given and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        value = (await request.form()).get("csrf", "")
        given = value if isinstance(value, str) else ""
    if not given or not hmac.compare_digest(given.encode(), expected.encode()):
        raise CsrfFailed("missing or wrong CSRF token")
