"""Wake-ups between writers and listeners: in-process for SQLite, LISTEN/NOTIFY for PostgreSQL.

A notification is a hint (`Store.listen`): queues are bounded and drop the oldest entry
when full, so a slow listener never stalls a writer; listeners poll as a backstop.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from cronhive.store._errors import translate_error
from cronhive.store.base import Notification

if TYPE_CHECKING:
    import psycopg

CHANNEL = "cronhive"
QUEUE_SIZE = 1024


def payload(topic: str, key: str) -> str:
    return f"{topic}:{key}"


def parse(text: str) -> Notification:
    topic, _, key = text.partition(":")
    return Notification(topic=topic, key=key)


class LocalHub:
    """Fan-out to the listeners of one SQLite database inside this process."""

    def __init__(self) -> None:
        self._queues: set[asyncio.Queue[Notification]] = set()

    def publish(self, note: Notification) -> None:
        for queue in self._queues:
            if queue.full():
                queue.get_nowait()  # drop the oldest: delivery is a hint
            queue.put_nowait(note)

    @asynccontextmanager
    async def subscribe(self) -> AsyncIterator[AsyncIterator[Notification]]:
        queue: asyncio.Queue[Notification] = asyncio.Queue(QUEUE_SIZE)
        self._queues.add(queue)
        try:
            yield _drain(queue)
        finally:
            self._queues.discard(queue)


async def _drain(queue: asyncio.Queue[Notification]) -> AsyncIterator[Notification]:
    while True:
        yield await queue.get()


# One hub per database file, so every Store of this process on that file hears the others.
_hubs: weakref.WeakValueDictionary[str, LocalHub] = weakref.WeakValueDictionary()


def hub_for(path: str) -> LocalHub:
    hub = _hubs.get(path)
    if hub is None:
        hub = _hubs[path] = LocalHub()
    return hub


@asynccontextmanager
async def pg_listen(conninfo: str, **params: Any) -> AsyncIterator[AsyncIterator[Notification]]:
    """LISTEN on a dedicated autocommit connection for as long as the context is open."""
    import psycopg  # here: a SQLite node never loads it (~10 MB)

    try:
        conn = await psycopg.AsyncConnection.connect(conninfo, autocommit=True, **params)
        await conn.execute(f"LISTEN {CHANNEL}")
    except psycopg.Error as exc:
        raise translate_error(exc) from exc
    try:
        yield _pg_notes(conn)
    finally:
        await conn.close()


async def _pg_notes(conn: psycopg.AsyncConnection[object]) -> AsyncIterator[Notification]:
    import psycopg

    try:
        async for note in conn.notifies():
            yield parse(note.payload)
    except psycopg.Error as exc:
        raise translate_error(exc) from exc
