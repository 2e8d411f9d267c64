"""Web session storage (see store.sessions): create, find, delete. Kept apart from sql.py
like the tokens: the web's work never touches the engine's hot paths."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from cronhive.errors import NotFound
from cronhive.store._core import SqlBase
from cronhive.store.schema import web_sessions
from cronhive.store.sessions import WebSession


class SessionOps(SqlBase):
    """create_web_session, find_web_session, delete_web_session (see `Store`)."""

    async def create_web_session(self, session: WebSession, *, now: datetime) -> WebSession:
        c = web_sessions.c
        async with self._write() as tx:
            await tx.run(web_sessions.delete().where(c.expires_at <= now))  # the expired
            await tx.run(
                web_sessions.insert().values(
                    digest=session.digest,
                    token_id=session.token_id,
                    token_digest=session.token_digest,
                    csrf=session.csrf,
                    created_at=session.created_at,
                    expires_at=session.expires_at,
                )
            )
        return session

    async def find_web_session(self, digest: str, *, now: datetime) -> WebSession:
        c = web_sessions.c
        found = await self._read(
            sa.select(web_sessions).where(c.digest == digest, c.expires_at > now)
        )
        if not found:
            raise NotFound("no such session")
        row = found[0]
        return WebSession(
            digest=row["digest"],
            token_id=row["token_id"],
            token_digest=row["token_digest"],
            csrf=row["csrf"],
            created_at=row["created_at"],
            expires_at=row["expires_at"],
        )

    async def delete_web_session(self, digest: str) -> None:
        async with self._write() as tx:
            await tx.run(web_sessions.delete().where(web_sessions.c.digest == digest))
