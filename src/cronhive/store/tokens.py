"""Personal access tokens: the record the store keeps and the token's text format.

A token reads ``chv_<id as 32 hex>_<secret>``: the id finds the row, the secret (32
random bytes, URL-safe base64) is checked against the stored SHA-256 digest with a
constant-time compare. Only the digest is stored, so a database leak reveals no token.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID, uuid4

from cronhive.errors import NotFound

__all__ = ["PREFIX", "Token", "digest", "new_token", "parse_token"]

PREFIX = "chv_"
_TEXT_RE = re.compile(r"chv_([0-9a-f]{32})_([A-Za-z0-9_-]{43})")


@dataclass(frozen=True, kw_only=True)
class Token:
    """A stored token of `user` (its secret is never kept, only `digest`).

    `groups` are the groups of the certificate that created it, so a session signed in
    with the token has the same identity as that certificate (the policy adds the rest).
    """

    id: UUID
    user: str
    groups: frozenset[str] = frozenset()
    name: str
    digest: str
    created_at: datetime
    expires_at: datetime | None = None
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None

    def usable(self, now: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


def digest(secret: str) -> str:
    """The hex SHA-256 of a token's secret part."""
    return hashlib.sha256(secret.encode()).hexdigest()


def new_token() -> tuple[UUID, str, str]:
    """A fresh (id, full token text to show once, digest of its secret to store)."""
    token_id = uuid4()
    secret = secrets.token_urlsafe(32)
    return token_id, f"{PREFIX}{token_id.hex}_{secret}", digest(secret)


def parse_token(text: str) -> tuple[UUID, str]:
    """(id, digest of the secret) of a token's text; NotFound if it is not one (a
    malformed token is as unknown as a wrong one)."""
    m = _TEXT_RE.fullmatch(text.strip())
    if m is None:
        raise NotFound("no such token")
    return UUID(hex=m.group(1)), digest(m.group(2))
