"""A node service that serves one listener: what the API, the web UI and the metrics
share. Each is a `NodeConfig.extra` entry that serves until cancelled."""

from __future__ import annotations

import abc
import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cronhive.engine.node import NodeContext


class Listener(abc.ABC):
    """Serves until cancelled; `await bound_port()` tells the port it got (after asking
    for port 0), or raises what stopped it before it bound."""

    __name__ = "listener"

    def __init__(self) -> None:
        self._bound: asyncio.Future[int] | None = None

    def _future(self) -> asyncio.Future[int]:
        if self._bound is None:
            self._bound = asyncio.get_running_loop().create_future()
        return self._bound

    async def bound_port(self) -> int:
        """The port the server listens on, once it does (raises what stopped it)."""
        return await asyncio.shield(self._future())

    async def __call__(self, ctx: NodeContext) -> None:
        bound = self._future()
        try:
            await self._serve(ctx, bound)
        except BaseException as exc:
            if not bound.done():
                bound.set_exception(
                    exc if isinstance(exc, Exception) else RuntimeError("cancelled")
                )
                # Nobody may be waiting for the port (a plain node): the error is raised
                # from here anyway, so do not let asyncio log it a second time.
                bound.exception()
            raise

    @abc.abstractmethod
    async def _serve(self, ctx: NodeContext, bound: asyncio.Future[int]) -> None:
        """Binds, sets `bound` to the port, then serves until cancelled."""
