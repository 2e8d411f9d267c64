"""A small async client over mutual TLS 1.3, for the CLI and tests.

    async with await connect("127.0.0.1:7433", certs_dir, cert_name="alice") as client:
        job = await client.jobs.Get(pb.GetJobRequest(id=...))

`jobs`, `runs`, `nodes` and `events` are the generated grpclib stubs (cronhive.v1); a
failed call raises `grpclib.exceptions.GRPCError` with the status of docs/api.md.
"""

from __future__ import annotations

import asyncio
import contextlib
from asyncio import BaseTransport
from pathlib import Path
from types import TracebackType

from grpclib import client as _grpclib
from grpclib.protocol import H2Protocol

from cronhive.api._generated.cronhive.v1 import cronhive_grpc
from cronhive.auth import CertPaths, client_context
from cronhive.config.server import parse_listen

__all__ = ["Channel", "Client", "connect"]

# How long a close waits for the server's side of the TLS shutdown before it drops the socket.
CLOSE_WITHIN = 2.0


class _Protocol(H2Protocol):
    """grpclib's protocol, telling when its connection is really gone: closing a TLS channel
    only starts the shutdown, and a loop that ends before it finishes leaks the socket."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.gone = asyncio.Event()
        self.transport: BaseTransport | None = None

    def connection_made(self, transport: BaseTransport) -> None:
        self.transport = transport
        super().connection_made(transport)

    def connection_lost(self, exc: BaseException | None) -> None:
        super().connection_lost(exc)
        self.gone.set()


class Channel(_grpclib.Channel):
    """grpclib's channel with a close that can be awaited until the socket is closed."""

    _current: _Protocol | None = None

    def _protocol_factory(self) -> H2Protocol:
        self._current = _Protocol(_grpclib.Handler(), self._config, self._h2_config)
        return self._current

    async def aclose(self, within: float = CLOSE_WITHIN) -> None:
        """Closes the connection and returns once its socket is closed; calls in flight
        fail. A server that does not answer the TLS shutdown within `within` seconds has
        its connection dropped instead."""
        protocol, self._current = self._current, None
        self.close()
        if protocol is None or protocol.transport is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(protocol.gone.wait(), within)
            return
        protocol.transport.abort()  # type: ignore[attr-defined]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(protocol.gone.wait(), within)


class Client:
    """An open channel and the four service stubs on it."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self.jobs = cronhive_grpc.JobServiceStub(channel)
        self.runs = cronhive_grpc.RunServiceStub(channel)
        self.nodes = cronhive_grpc.NodeServiceStub(channel)
        self.events = cronhive_grpc.EventServiceStub(channel)
        self.tokens = cronhive_grpc.TokenServiceStub(channel)
        self.scripts = cronhive_grpc.ScriptServiceStub(channel)
        self.notifications = cronhive_grpc.NotificationServiceStub(channel)

    def close(self) -> None:
        """Starts closing the connection; calls in flight fail. `aclose` waits for it."""
        self.channel.close()

    async def aclose(self) -> None:
        """Closes the connection and waits until its socket is closed."""
        await self.channel.aclose()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


async def connect(server: str, certs_dir: Path, *, cert_name: str = "admin") -> Client:
    """A client of `server` (``host:port``) presenting ``<certs_dir>/<cert_name>.crt/.key``
    and trusting only ``<certs_dir>/ca.crt``. The connection opens on the first call.

    Raises InvalidInput for a malformed address or a missing/bad certificate file.
    """
    host, port = parse_listen(server, field="server")
    paths = CertPaths(dir=certs_dir)
    ssl = client_context(paths.ca_cert, paths.client_cert(cert_name), paths.client_key(cert_name))
    return Client(Channel(host, port, ssl=ssl))
