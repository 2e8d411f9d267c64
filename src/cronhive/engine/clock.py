"""The injected clock: the engine never calls datetime.now() or sleeps on its own.

A node runs on `DatabaseClock`: the database's time is the cluster's time, so a node
whose own clock is wrong neither reaps live leases nor fires early. Tests drive a
`ManualClock` so a schedule is exercised without waiting for it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

log = logging.getLogger(__name__)


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, aware UTC."""
        ...

    async def sleep_until(self, instant: datetime, wake: asyncio.Event) -> None:
        """Returns at `instant`, or earlier once `wake` is set (the caller clears it)."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep_until(self, instant: datetime, wake: asyncio.Event) -> None:
        delay = (instant - self.now()).total_seconds()
        if delay <= 0 or wake.is_set():
            return
        try:
            # asyncio's timer runs on the monotonic clock; fine for delays of minutes.
            async with asyncio.timeout(delay):
                await wake.wait()
        except TimeoutError:
            return


class DatabaseClock(SystemClock):
    """The database's time, carried forward on this host's monotonic clock.

    `sync()` asks the database for its time and anchors on it, NTP-style: the answer is
    taken to be the time at the middle of the round trip, and a slow answer (over
    `MAX_ROUND_TRIP`) is not trusted once an anchor exists. Between syncs the clock moves
    with the monotonic clock, so a step of the host's wall clock changes nothing. Never
    goes backwards. Warns when the host's wall clock is off by more than `warn_after`.
    """

    MAX_ROUND_TRIP = 0.25  # seconds

    def __init__(
        self, database_time: Callable[[], Awaitable[datetime]], *, warn_after: float = 1.0
    ) -> None:
        self._database_time = database_time
        self._warn_after = warn_after
        # One tuple, so a reader on another thread never sees half a re-anchoring.
        self._ref = (datetime.now(UTC), time.monotonic())
        self._synced = False
        self._last = self._ref[0]
        self.offset = 0.0  # database minus host wall clock, seconds
        self._warned = False

    def now(self) -> datetime:
        anchor, anchor_mono = self._ref
        at = anchor + timedelta(seconds=time.monotonic() - anchor_mono)
        if at < self._last:
            return self._last
        self._last = at
        return at

    async def sync(self, database_time: Callable[[], Awaitable[datetime]] | None = None) -> None:
        """Re-anchors on the database's time (read with `database_time`, by default the
        one given at construction: the lease keeper reads it on a connection of its
        own). Raises `StoreUnavailable`."""
        before = time.monotonic()
        db = await (database_time or self._database_time)()
        after = time.monotonic()
        if self._synced and after - before > self.MAX_ROUND_TRIP:
            return
        middle = (before + after) / 2
        wall = datetime.now(UTC) - timedelta(seconds=after - middle)
        if not self._synced:
            self._last = db  # the host's time before the first sync counts for nothing
        self._ref, self._synced = (db, middle), True
        self.offset = (db - wall).total_seconds()
        off = abs(self.offset) > self._warn_after
        if off and not self._warned:
            log.warning(
                "this host's clock is %+.3fs off the database's; cronhive uses the "
                "database's time, but check NTP on this host",
                -self.offset,
            )
        elif not off and self._warned:
            log.info("this host's clock is within %.1fs of the database's again", self._warn_after)
        self._warned = off


class ManualClock:
    """A clock that moves only when told to; sleepers wake when it passes their instant."""

    def __init__(self, start: datetime) -> None:
        self._now = start
        self._sleepers: list[tuple[datetime, asyncio.Future[bool]]] = []

    def now(self) -> datetime:
        return self._now

    async def advance(self, seconds: float) -> None:
        await self.set(self._now + timedelta(seconds=seconds))

    async def set(self, instant: datetime) -> None:
        self._now = instant
        due = [f for t, f in self._sleepers if t <= instant]
        self._sleepers = [(t, f) for t, f in self._sleepers if t > instant]
        for f in due:
            if not f.done():
                f.set_result(True)
        # Let the woken tasks run before the caller looks at their effects.
        for _ in range(5):
            await asyncio.sleep(0)

    async def sleep_until(self, instant: datetime, wake: asyncio.Event) -> None:
        if instant <= self._now or wake.is_set():
            return
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._sleepers.append((instant, fut))
        waker: asyncio.Future[bool] = asyncio.ensure_future(wake.wait())
        try:
            await asyncio.wait([fut, waker], return_when=asyncio.FIRST_COMPLETED)
        finally:
            waker.cancel()
            if not fut.done():
                fut.cancel()
