"""Token storage contract, on SQLite and PostgreSQL: only digests kept, a name unique among
live tokens, and find_token refusing alike what is missing, wrong, expired or revoked."""

from __future__ import annotations

from datetime import timedelta

import pytest
from storekit import NOW, at

from cronhive.errors import Conflict, NotFound
from cronhive.store import Store, Token
from cronhive.store.tokens import new_token, parse_token


def _token(
    user: str = "alice", name: str = "laptop", days: float | None = None
) -> tuple[Token, str]:
    token_id, text, digest = new_token()
    token = Token(
        id=token_id,
        user=user,
        groups=frozenset({"ops"}),
        name=name,
        digest=digest,
        created_at=NOW,
        expires_at=None if days is None else NOW + timedelta(days=days),
    )
    return token, text


async def test_a_created_token_is_found_by_its_text_and_records_its_use(store: Store) -> None:
    token, text = _token()
    await store.create_token(token)
    token_id, digest = parse_token(text)
    found = await store.find_token(token_id, digest, now=at(5))
    assert (found.id, found.user, found.groups, found.name) == (
        token.id,
        "alice",
        frozenset({"ops"}),
        "laptop",
    )
    [listed] = await store.list_tokens("alice")
    assert listed.last_used_at == at(5)
    assert text[37:] not in listed.digest  # the secret itself is never stored


async def test_find_refuses_a_wrong_secret_an_unknown_id_and_malformed_text(store: Store) -> None:
    token, text = _token()
    await store.create_token(token)
    _, other_text = _token()
    _, wrong_digest = parse_token(other_text)
    with pytest.raises(NotFound):
        await store.find_token(token.id, wrong_digest, now=NOW)
    with pytest.raises(NotFound):
        await store.find_token(parse_token(other_text)[0], parse_token(text)[1], now=NOW)
    for bad in ("", "chv_", text[:-1], text + "x", "Bearer " + text):
        with pytest.raises(NotFound):
            parse_token(bad)
    [listed] = await store.list_tokens("alice")
    assert listed.last_used_at is None


async def test_an_expired_token_is_not_found(store: Store) -> None:
    token, text = _token(days=1)
    await store.create_token(token)
    token_id, digest = parse_token(text)
    assert (await store.find_token(token_id, digest, now=at(3600))).id == token.id
    with pytest.raises(NotFound):
        await store.find_token(token_id, digest, now=NOW + timedelta(days=1))


async def test_revoking_ends_a_token_and_frees_its_name(store: Store) -> None:
    token, text = _token()
    await store.create_token(token)
    with pytest.raises(Conflict):
        await store.create_token(_token()[0])  # same user, same live name
    await store.create_token(_token(user="bob")[0])  # another user's namesake is fine
    revoked = await store.revoke_token("alice", token.id, now=at(10))
    assert revoked.revoked_at == at(10)
    again = await store.revoke_token("alice", token.id, now=at(20))
    assert again.revoked_at == at(10)  # the first instant stays
    with pytest.raises(NotFound):
        await store.find_token(*parse_token(text), now=at(11))
    renewed, _ = _token()
    await store.create_token(renewed)
    listed = {t.id: t.revoked_at for t in await store.list_tokens("alice")}
    assert listed == {token.id: at(10), renewed.id: None}


async def test_another_users_token_cannot_be_revoked_or_listed(store: Store) -> None:
    token, text = _token(user="alice")
    await store.create_token(token)
    with pytest.raises(NotFound):
        await store.revoke_token("bob", token.id, now=at(1))
    assert await store.list_tokens("bob") == []
    assert (await store.find_token(*parse_token(text), now=at(2))).revoked_at is None
