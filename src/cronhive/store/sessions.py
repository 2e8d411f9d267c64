"""Web sign-in sessions as the store keeps them: any node serves a signed-in browser, a
restart signs nobody out, and signing out ends the session on every node at once.

The cookie holds a random session id; the store keeps only its SHA-256 (`digest`), so a
database reader learns no usable cookie. A session names the token it was signed in with
(`token_id` and that token's digest): each request re-checks the token, so revoking the
token ends its sessions everywhere.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

__all__ = ["WebSession", "session_digest"]


@dataclass(frozen=True, kw_only=True)
class WebSession:
    digest: str  # SHA-256 hex of the cookie's session id
    token_id: UUID
    token_digest: str
    csrf: str
    created_at: datetime
    expires_at: datetime


def session_digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()
