"""The gRPC server every node runs: the four cronhive services, grpc.health.v1 and server
reflection on one port, over mutual TLS 1.3 only (auth.tls.server_context).

    ApiService(host=..., port=..., certs=..., policy=...)       for NodeConfig.extra
    start_api(api, host=..., port=..., certs=...) -> ApiServer  lower level, for tests

Closing (cancellation of the service task) stops accepting connections, cancels running
calls (followers and watchers end) and waits for them, bounded by `CLOSE_TIMEOUT`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Unpack, cast

from grpclib.health.check import ServiceCheck
from grpclib.health.service import Health
from grpclib.reflection.service import ServerReflection

from cronhive.api._service import Api
from cronhive.api._transport import LimitedServer, TransportLimits
from cronhive.api.events import EventService
from cronhive.api.jobs import JobService
from cronhive.api.nodes import NodeService
from cronhive.api.notifications import NotificationService
from cronhive.api.runs import RunService
from cronhive.api.scripts import ScriptService
from cronhive.api.tokens import TokenService
from cronhive.auth import CertPaths, server_context
from cronhive.errors import InvalidInput
from cronhive.service import Service
from cronhive.service.frontend import FrontEnd, Where

__all__ = ["ApiServer", "ApiService", "TransportLimits", "start_api"]

log = logging.getLogger(__name__)

CLOSE_TIMEOUT = 5.0


class ApiServer:
    """A started server. `port` is the bound port (useful after binding port 0)."""

    def __init__(self, server: LimitedServer, port: int, api: Api) -> None:
        self.server = server
        self.port = port
        self.api = api

    async def close(self) -> None:
        """Ends streams with UNAVAILABLE, stops accepting, cancels what still runs and
        waits for it (bounded)."""
        self.api.closing.set()
        if self.api.streams:
            await asyncio.wait(set(self.api.streams), timeout=CLOSE_TIMEOUT)
        self.server.close()
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await self.server.wait_closed()
        except TimeoutError:
            log.warning("API calls still running after %.0fs at close", CLOSE_TIMEOUT)


HEALTH_TTL = 5.0  # seconds a health answer is reused (a probe storm is one query)


def handlers(api: Api) -> list[Any]:
    cronhive: list[Any] = [
        JobService(api),
        RunService(api),
        NodeService(api),
        NotificationService(api),
        EventService(api),
        TokenService(api),
        ScriptService(api),
    ]

    # Every service by its full name ("cronhive.v1.JobService") and "" for the server,
    # SERVING while the database answers: what a load balancer's gRPC health check asks.
    database = ServiceCheck(api.service.database_answers, check_ttl=HEALTH_TTL, check_timeout=2.0)
    services = [*cronhive, Health({service: [database] for service in cronhive})]
    return [*ServerReflection.extend(services), *services]


async def start_api(
    api: Api, *, host: str, port: int, certs: CertPaths, limits: TransportLimits | None = None
) -> ApiServer:
    """Binds and starts serving, with ``limits`` (message size, handshake timeout,
    connections, calls per identity: api/_transport.py). Raises InvalidInput for bad
    certificate files or an address that cannot be bound (field ``listen``)."""
    ssl = server_context(certs)
    server = LimitedServer(handlers(api), limits or TransportLimits())
    try:
        await server.start_limited(host, port, ssl_context=ssl)
    except OSError as exc:
        raise InvalidInput(
            f"listen: cannot listen on {host}:{port} ({exc.strerror})", field="listen"
        ) from exc
    listener = cast(Any, server._server)  # its sockets tell the port bound for 0
    bound = int(listener.sockets[0].getsockname()[1]) if listener.sockets else port
    log.info("gRPC API on %s:%d (mTLS 1.3)", host, bound)
    return ApiServer(server, bound, api)


class ApiService(FrontEnd):
    """The gRPC API of a node, as a NodeConfig.extra entry (service.FrontEnd), with
    transport `limits` (api/_transport.py)."""

    __name__ = "api"

    def __init__(self, *, limits: TransportLimits | None = None, **where: Unpack[Where]) -> None:
        super().__init__(**where)
        self.limits = limits

    async def serve(self, service: Service, bound: asyncio.Future[int]) -> None:
        """Serves the API until cancelled."""
        api = Api(service=service)
        server = await start_api(
            api, host=self.host, port=self.port, certs=self.certs, limits=self.limits
        )
        try:
            bound.set_result(server.port)
            await asyncio.Event().wait()  # until cancelled
        finally:
            await server.close()
