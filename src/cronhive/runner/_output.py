"""One output stream of a run: its spool file, its size, and the followers waiting on it."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncGenerator
from pathlib import Path

from cronhive.errors import NotFound

log = logging.getLogger("cronhive.runner")
FOLLOW_CHUNK = 1 << 20  # most bytes one follower step reads (bounds its memory)


class SpoolStream:
    """Bytes appended to a spool file; followers read the file, never the pipe.

    ``size`` only grows and counts bytes already written to the file, so any reader may
    ``pread`` below it. ``closed`` means no byte will ever be added. Followers wait on
    futures resolved by ``_wake`` (no polling); a follower costs the writer nothing
    beyond resolving its future.
    """

    __slots__ = ("_waiters", "broken", "closed", "discarded", "fd", "path", "size")

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None
        self.size = 0
        self.closed = False
        self.discarded = False
        self.broken = False
        self._waiters: list[asyncio.Future[None]] = []

    def append(self, data: bytes) -> None:
        """Write ``data`` at the end, then wake followers.

        The file is created on the first byte: creating files is the costliest part of
        a short run on some file systems, and most short runs print nothing.
        """
        try:
            if self.fd is None and not self.broken:
                self.fd = os.open(
                    self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600
                )
            if self.fd is not None:
                view = memoryview(data)
                while view:
                    view = view[os.write(self.fd, view) :]
        except OSError:
            # Disk full or the like: the run goes on, its output here is cut short
            # (followers end at the last byte stored).
            log.exception("spool file %s failed; output dropped", self.path)
            self.broken = True
            if self.fd is not None:
                os.close(self.fd)
                self.fd = None
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

    async def follow(self, offset: int) -> AsyncGenerator[bytes, None]:
        """Yield the bytes from ``offset`` on, live, until the stream is closed and read."""
        if self.discarded:
            raise NotFound("the run's output was discarded")
        loop = asyncio.get_running_loop()
        fd: int | None = None
        try:
            while True:
                if offset < self.size:
                    if fd is None:
                        try:
                            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
                        except FileNotFoundError:
                            raise NotFound("the run's output was discarded") from None
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
            if fd is not None:
                os.close(fd)
