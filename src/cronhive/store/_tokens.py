"""Token storage (personal access tokens): create, list, revoke, find.

Kept apart from sql.py so token work never touches the hot paths. A token is found by
its id and then its digest compared in constant time; using it records `last_used_at`.
"""

from __future__ import annotations

import hmac
from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping

from cronhive.errors import NotFound
from cronhive.model import Event
from cronhive.store._core import SqlBase
from cronhive.store.schema import tokens
from cronhive.store.tokens import Token


def _row_to_token(row: RowMapping) -> Token:
    return Token(
        id=row["id"],
        user=row["user"],
        groups=frozenset(row["groups"]),
        name=row["name"],
        digest=row["hash"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        last_used_at=row["last_used_at"],
        revoked_at=row["revoked_at"],
    )


def _values(token: Token) -> dict[str, Any]:
    return {
        "id": token.id,
        "user": token.user,
        "groups": sorted(token.groups),
        "name": token.name,
        "hash": token.digest,
        "created_at": token.created_at,
        "expires_at": token.expires_at,
        "last_used_at": token.last_used_at,
        "revoked_at": token.revoked_at,
    }


class TokenOps(SqlBase):
    """create_token, list_tokens, revoke_token, find_token (see `Store`)."""

    async def create_token(self, token: Token, *, event: Event | None = None) -> Token:
        async with self._write() as tx:
            await tx.run(tokens.insert().values(_values(token)))
            await self._record(tx, event)
        return token

    async def list_tokens(self, user: str) -> list[Token]:
        found = await self._read(
            sa.select(tokens)
            .where(tokens.c.user == user)
            .order_by(tokens.c.created_at, tokens.c.id)
        )
        return [_row_to_token(r) for r in found]

    async def revoke_token(
        self, user: str, token_id: UUID, *, now: datetime, event: Event | None = None
    ) -> Token:
        c = tokens.c
        async with self._write() as tx:
            await tx.run(
                tokens.update()
                .where(c.id == token_id, c.user == user, c.revoked_at.is_(None))
                .values(revoked_at=now)
            )
            row = (
                (await tx.run(sa.select(tokens).where(c.id == token_id, c.user == user)))
                .mappings()
                .first()
            )
            if row is None:
                raise NotFound("no such token")
            await self._record(tx, event)
        return _row_to_token(row)

    async def find_token(self, token_id: UUID, digest: str, *, now: datetime) -> Token:
        c = tokens.c
        async with self._write() as tx:
            row = (await tx.run(sa.select(tokens).where(c.id == token_id))).mappings().first()
            token = None if row is None else _row_to_token(row)
            # compare_digest: the time taken does not tell how much of a guess was right.
            if (
                token is None
                or not hmac.compare_digest(token.digest, digest)
                or not token.usable(now)
            ):
                raise NotFound("no such token")
            await tx.run(tokens.update().where(c.id == token_id).values(last_used_at=now))
        return token
