"""One output stream of a run: its spool file, its size, and the followers waiting on it."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

from cronhive.errors import NotFound

FOLLOW_CHUNK = 1 << 20  # most bytes one follower step reads (bounds its memory)


class SpoolStream:
    """Bytes appended to a spool file; followers read the file, never the pipe.

    ``size`` only grows and counts bytes already written to the file, so any reader may
    ``pread`` below it. ``closed`` means no byte will ever be added. Followers wait on
    futures resolved by ``_wake`` (no polling); a follower costs the writer nothing
    beyond resolving its future.
    """

    __slots__ = ("_waiters", "closed", "discarded", "fd", "path", "size")

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None
        self.size = 0
        self.closed = False
        self.discarded = False
        self._waiters: list[asyncio.Future[None]] = []

    def open(self) -> None:
        """Create the file (0600, must not exist). OSError if it cannot be created."""
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)

    def append(self, data: bytes) -> None:
        """Write ``data`` at the end, then wake followers."""
        fd = self.fd
        if fd is not None:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        self.size += len(data)
        self._wake()

    def close(self) -> None:
        """No more bytes: close the file and let followers end."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        self.closed = True
        self._wake()

    def _wake(self) -> None:
        if self._waiters:
            for fut in self._waiters:
                if not fut.done():
                    fut.set_result(None)
            self._waiters.clear()

    async def follow(self, offset: int) -> AsyncIterator[bytes]:
        """Yield the bytes from ``offset`` on, live, until the stream is closed and read."""
        if self.discarded:
            raise NotFound("the run's output was discarded")
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            if self.size or not self.closed:
                raise NotFound("the run's output was discarded") from None
            return  # never created (the run failed before its spool existed)
        try:
            loop = asyncio.get_running_loop()
            while True:
                if offset < self.size:
                    data = os.pread(fd, min(self.size - offset, FOLLOW_CHUNK), offset)
                    if not data:  # the file shrank under us: nothing sane to add
                        return
                    offset += len(data)
                    yield data
                elif self.closed:
                    return
                else:
                    fut: asyncio.Future[None] = loop.create_future()
                    self._waiters.append(fut)
                    await fut
        finally:
            os.close(fd)
