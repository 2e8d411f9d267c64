"""The injected clock: the engine never calls datetime.now() or sleeps on its own.

Tests drive a `ManualClock` so a schedule is exercised without waiting for it.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Protocol


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
