"""What the gRPC API and the web UI share as listeners of a node: where they listen,
with which certificates, policy and notification targets, and the node's `Service`
they serve (built from the node's parts when the node starts them)."""

from __future__ import annotations

import abc
import asyncio
from typing import NotRequired, TypedDict, Unpack

from cronhive.auth import CertPaths, Policy
from cronhive.engine.listener import Listener
from cronhive.engine.node import NodeContext
from cronhive.notify import Targets
from cronhive.service import POLL_SECONDS, Service

__all__ = ["FrontEnd", "Where"]


class Where(TypedDict):
    """A front end's keyword arguments: where it listens and what it serves with."""

    host: str
    port: int
    certs: CertPaths
    policy: Policy
    poll: NotRequired[float | None]  # None: POLL_SECONDS (a stream's re-check pace)
    targets: NotRequired[Targets | None]  # what a job's notify may name (the node's)


class FrontEnd(Listener):
    """A `NodeConfig.extra` entry serving the node's operations on `host:port`; `await
    bound_port()` tells the port (useful after asking for port 0)."""

    def __init__(self, **where: Unpack[Where]) -> None:
        self.host, self.port = where["host"], where["port"]
        self.certs, self.policy = where["certs"], where["policy"]
        poll = where.get("poll")
        self.poll = POLL_SECONDS if poll is None else poll
        self.targets = where.get("targets")
        super().__init__()

    async def _serve(self, ctx: NodeContext, bound: asyncio.Future[int]) -> None:
        service = Service(
            store=ctx.store,
            clock=ctx.clock,
            hub=ctx.hub,
            policy=self.policy,
            poll=self.poll,
            targets=self.targets or Targets(),
            sql=ctx.config.sql,
            blobs=ctx.config.blobs,
            script_max_bytes=ctx.config.script_max_bytes,
        )
        await self.serve(service, bound)

    @abc.abstractmethod
    async def serve(self, service: Service, bound: asyncio.Future[int]) -> None:
        """Binds, sets `bound` to the port, then serves `service` until cancelled."""
