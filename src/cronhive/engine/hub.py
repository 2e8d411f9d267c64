"""Fans the node's one notification listener out to many in-process waiters.

A PostgreSQL LISTEN costs a connection, so a node listens once and every follower of a
run's output (or watcher of events) waits on an `asyncio.Event` here instead.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager


class Hub:
    def __init__(self) -> None:
        self._waiters: defaultdict[tuple[str, str], set[asyncio.Event]] = defaultdict(set)

    def publish(self, topic: str, key: str = "") -> None:
        for k in ((topic, key), (topic, "")) if key else ((topic, ""),):
            for event in self._waiters.get(k, ()):
                event.set()

    @contextmanager
    def subscribe(self, topic: str, key: str = "") -> Iterator[asyncio.Event]:
        """An event set on every notification of `topic` (and `key`, if given); the
        subscriber clears it before re-checking what it waits for."""
        event = asyncio.Event()
        waiters = self._waiters[(topic, key)]
        waiters.add(event)
        try:
            yield event
        finally:
            waiters.discard(event)
            if not waiters:
                self._waiters.pop((topic, key), None)
