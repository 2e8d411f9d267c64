"""The lease keeper: renews this node's lease from a thread of its own.

The node's event loop also starts processes, reads their output and records their ends;
on a loaded host a renewal queued behind that work can come late enough to fence a
healthy node (its runs killed and retried elsewhere for nothing). So renewal runs on its
own thread, event loop and database connection, and moves the fencing deadline itself.

It renews only while the node's loop still makes progress (`pulse()` within
`stall_after`): a node whose loop is stuck cannot record its runs' ends, so it must not
keep them. What the renewal brings back (stop requests, "this lease is gone", failures)
is handed to the node's loop, which acts on it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from cronhive.engine.clock import Clock, DatabaseClock
from cronhive.engine.watchdog import Watchdog
from cronhive.errors import CronhiveError, Fenced
from cronhive.store import Store

log = logging.getLogger(__name__)

StoreFactory = Callable[[], Coroutine[Any, Any, Store]]


@dataclass(frozen=True, kw_only=True)
class Renewal:
    """What one renewal attempt brought back, for the node's loop."""

    node_id: UUID
    stops: list[UUID] = field(default_factory=list)
    fenced: bool = False
    error: str | None = None  # the renewal failed (the lease may still hold)


async def renew_once(
    store: Store,
    node_id: UUID,
    *,
    ttl: float,
    margin: float,
    watchdog: Watchdog,
    clock: Clock,
    sync: Callable[[], Awaitable[None]],
    current: Callable[[], bool] = lambda: True,
) -> Renewal:
    """One renewal: the clock synced and the lease extended, never waiting past the
    fencing deadline (a hung connection must not keep the node from noticing that the
    lease is lapsing); the deadline moves only if `node_id` is still `current()`."""
    began = time.monotonic()
    try:
        async with asyncio.timeout(max(0.05, watchdog.remaining())):
            await sync()
            stops = await store.renew_lease(node_id, ttl=ttl, now=clock.now())
    except Fenced:
        return Renewal(node_id=node_id, fenced=True)
    except (CronhiveError, TimeoutError) as exc:
        return Renewal(node_id=node_id, error=str(exc) or "timed out")
    if current():
        watchdog.hold_until(began + ttl - margin)
    return Renewal(node_id=node_id, stops=stops)


class LeaseKeeper:
    def __init__(
        self,
        open_store: StoreFactory,
        *,
        ttl: float,
        margin: float,
        watchdog: Watchdog,
        clock: DatabaseClock,
        deliver: Callable[[Renewal], None],
    ) -> None:
        self._open_store = open_store
        self._ttl = ttl
        self._margin = margin
        self._watchdog = watchdog
        self._clock = clock
        self._deliver = deliver
        # Generous: on a loaded host one turn of a busy loop can take seconds (seen: 3.8 s
        # at load 9 on 2 cores), and a slow node is not a stuck one. A stuck one still
        # loses its runs, two leases later.
        self._stall_after = max(2.0, 2 * ttl)
        self._pulse = time.monotonic()
        self._node_id: UUID | None = None  # None: not registered; nothing to renew
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._main, name="lease-keeper", daemon=True)
        self._failure: BaseException | None = None

    def start(self) -> None:
        """Starts the thread; raises what opening its database connection raised."""
        self._thread.start()
        self._started.wait()
        if self._failure is not None:
            raise self._failure

    def pulse(self) -> None:
        """The node's loop is alive (call it often from that loop)."""
        self._pulse = time.monotonic()

    def hold(self, node_id: UUID | None) -> None:
        """Renew `node_id`'s lease from now on (None: stop renewing, e.g. while the node
        registers again)."""
        self._node_id = node_id

    def close(self) -> None:
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(stop.set)
        self._thread.join(10)

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:
            if not self._started.is_set():
                self._failure = exc
            else:
                log.exception("the lease keeper stopped")
        finally:
            self._started.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        store = await self._open_store()
        self._started.set()
        try:
            while not self._stop.is_set():
                try:
                    async with asyncio.timeout(self._ttl / 3):
                        await self._stop.wait()
                    break
                except TimeoutError:
                    pass
                await self._renew(store)
        finally:
            await store.close()

    async def _renew(self, store: Store) -> None:
        node_id = self._node_id
        if node_id is None:
            return
        stalled = time.monotonic() - self._pulse
        if stalled > self._stall_after:
            log.error("the node's loop has not run for %.1fs: not renewing its lease", stalled)
            return
        renewal = await renew_once(
            store,
            node_id,
            ttl=self._ttl,
            margin=self._margin,
            watchdog=self._watchdog,
            clock=self._clock,
            sync=lambda: self._clock.sync(store.database_time),
            current=lambda: self._node_id == node_id,
        )
        if renewal.fenced:
            self._node_id = None  # the node registers again and says so
        self._deliver(renewal)
