"""The metrics listener: `/metrics` (Prometheus text format), `/healthz` and `/readyz`,
plain HTTP on an address of its own (`--metrics HOST:PORT`), as a NodeConfig.extra entry.

Plain HTTP and no authentication, as Prometheus and load balancers expect: the listener
says only counts and states, never names, commands or output. It is off unless asked for;
bind it to localhost or to a network only the monitoring can reach.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any

from hypercorn.asyncio import serve
from hypercorn.config import Config
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cronhive.engine.listener import Listener
from cronhive.engine.node import NodeContext
from cronhive.errors import CronhiveError, InvalidInput
from cronhive.metrics._instruments import QUEUE_DEPTH_CAP, Metrics
from cronhive.model import RunState

__all__ = ["READY_DB_TIMEOUT", "MetricsService"]

log = logging.getLogger("cronhive.metrics")
READY_DB_TIMEOUT = 2.0  # seconds a readiness probe waits for the database


class MetricsService(Listener):
    """Serves the listener until cancelled; `await bound_port()` tells the port (after
    asking for port 0). Raises InvalidInput (field ``metrics``) if it cannot bind."""

    __name__ = "metrics"

    def __init__(self, *, host: str, port: int, metrics: Metrics) -> None:
        self.host, self.port, self.metrics = host, port, metrics
        super().__init__()

    async def _serve(self, ctx: NodeContext, bound: asyncio.Future[int]) -> None:
        sock = _bind(self.host, self.port)
        port = int(sock.getsockname()[1])
        config = Config()
        config.bind = [f"fd://{sock.detach()}"]
        config.errorlog = log
        config.accesslog = None
        config.graceful_timeout = 1.0
        stop = asyncio.Event()

        async def shutdown() -> None:
            await stop.wait()

        app: Any = _app(ctx, self.metrics)
        server = asyncio.create_task(serve(app, config, shutdown_trigger=shutdown))
        bound.set_result(port)
        log.info(
            "metrics and probes on http://%s:%d (/metrics, /healthz, /readyz)", self.host, port
        )
        try:
            await asyncio.shield(server)
        finally:
            stop.set()
            try:
                async with asyncio.timeout(5):
                    await server
            except TimeoutError:
                log.warning("metrics server still closing after 5s")


async def readiness(ctx: NodeContext) -> dict[str, Any]:
    """Whether this node should get traffic: registered and running, lease held (by
    the fencing clock: a node whose lease lapsed is giving its runs up), and the database
    answering within `READY_DB_TIMEOUT`."""
    checks: dict[str, Any] = {
        "started": ctx.process.ready.is_set(),
        "lease": ctx.process.watchdog.remaining() > 0,
    }
    try:
        async with asyncio.timeout(READY_DB_TIMEOUT):
            await ctx.store.database_time()
        checks["database"] = True
    except (CronhiveError, TimeoutError, OSError) as exc:
        checks["database"] = False
        checks["database_error"] = str(exc) or "timed out"
    checks["ready"] = all(checks[k] for k in ("started", "lease", "database"))
    return checks


def _app(ctx: NodeContext, metrics: Metrics) -> Starlette:
    async def healthz(_: Request) -> Response:
        return JSONResponse({"alive": True, "node": ctx.config.name})

    async def readyz(_: Request) -> Response:
        checks = await readiness(ctx)
        return JSONResponse(checks, status_code=200 if checks["ready"] else 503)

    async def scrape(_: Request) -> Response:
        metrics.running.set(len(ctx.process.worker.running()))
        metrics.lease_held.set(1 if ctx.process.watchdog.remaining() > 0 else 0)
        try:
            async with asyncio.timeout(READY_DB_TIMEOUT):
                queued = await ctx.store.list_executions(
                    visible_to=None, states=[RunState.QUEUED], limit=QUEUE_DEPTH_CAP
                )
            metrics.queue_depth.set(len(queued))
        except (CronhiveError, TimeoutError):
            pass  # the last value stays; the error is counted by the store wrapper
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return Starlette(
        routes=[
            Route("/metrics", scrape),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
        ]
    )


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(64)
    except OSError as exc:
        sock.close()
        raise InvalidInput(
            f"metrics: cannot listen on {host}:{port} ({exc.strerror})", field="metrics"
        ) from exc
    return sock
