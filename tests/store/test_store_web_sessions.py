"""Web sessions in the store (store.sessions), on both backends: found by digest until
they expire, deleted at sign-out, expired ones cleared when a new one is made."""

from __future__ import annotations

from datetime import timedelta
from uuid import uuid4

import pytest
from storekit import NOW, StoreFactory, at

from cronhive.errors import NotFound
from cronhive.store import Store
from cronhive.store.sessions import WebSession, session_digest


def _session(cookie: str, expires_in: float) -> WebSession:
    return WebSession(
        digest=session_digest(cookie),
        token_id=uuid4(),
        token_digest="d" * 64,
        csrf="c" * 43,
        created_at=NOW,
        expires_at=NOW + timedelta(seconds=expires_in),
    )


async def test_found_until_expiry_and_gone_after_sign_out(store: Store) -> None:
    made = await store.create_web_session(_session("cookie-1", 60), now=NOW)
    assert await store.find_web_session(session_digest("cookie-1"), now=at(59)) == made
    with pytest.raises(NotFound):
        await store.find_web_session(session_digest("cookie-1"), now=at(60))
    with pytest.raises(NotFound):
        await store.find_web_session(session_digest("no-such-cookie"), now=NOW)
    await store.delete_web_session(made.digest)
    with pytest.raises(NotFound):
        await store.find_web_session(made.digest, now=NOW)
    await store.delete_web_session(made.digest)  # twice: no error


async def test_every_store_on_the_database_sees_a_session(store_factory: StoreFactory) -> None:
    one, two = await store_factory(), await store_factory()
    made = await one.create_web_session(_session("cookie-2", 60), now=NOW)
    assert await two.find_web_session(made.digest, now=NOW) == made
    await two.create_web_session(_session("cookie-3", 60), now=at(61))  # clears the expired
    with pytest.raises(NotFound):
        await one.find_web_session(made.digest, now=NOW)
