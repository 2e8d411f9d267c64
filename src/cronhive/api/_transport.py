"""Transport limits of the gRPC server: message size, TLS handshake time, connections,
concurrent calls per identity. Each is enforced before the thing it limits costs memory.

grpclib offers none of them, so this module subclasses its ``Server`` in two places:

- ``accept``: the server listens with its own accept loop instead of
  ``loop.create_server``: a connection over ``max_connections`` (TLS handshakes under
  way included: asyncio never tells an application about those) is closed at once, and
  each accepted socket gets ``loop.connect_accepted_socket(..., ssl_handshake_timeout)``.
- ``LimitedHandler.accept`` (grpclib's per-connection request handler): a new stream of
  an identity already at ``max_streams_per_identity`` is answered RESOURCE_EXHAUSTED
  without running a handler; every stream's ``recv_data`` refuses a message whose length
  prefix is over ``max_message_bytes`` (RESOURCE_EXHAUSTED) before reading its body.
  With HTTP/2 windows of ``window_bytes`` per stream and per connection, a client can
  make the server hold at most that much unread data per connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any, cast

from grpclib.config import Configuration
from grpclib.const import Status
from grpclib.exceptions import GRPCError
from grpclib.protocol import H2Protocol
from grpclib.protocol import Stream as H2Stream
from grpclib.server import Handler, Server

log = logging.getLogger("cronhive.api")

_HEADER = 5  # gRPC's length prefix: 1 flag byte, 4 length bytes


@dataclass(frozen=True, kw_only=True)
class TransportLimits:
    """``max_message_bytes``: largest request message (grpc's usual 4 MiB).
    ``handshake_timeout``: seconds a TLS handshake may take before the socket is closed.
    ``max_connections``: open connections (handshakes included); more are closed at once.
    ``max_streams_per_identity``: concurrent calls of one user (client certificate CN)
    over all connections; more are answered RESOURCE_EXHAUSTED.
    ``window_bytes``: HTTP/2 receive window per stream and per connection."""

    max_message_bytes: int = 4 << 20
    handshake_timeout: float = 10.0
    max_connections: int = 512
    max_streams_per_identity: int = 64
    window_bytes: int = 1 << 20


def _who(stream: H2Stream) -> str:
    """The caller's certificate CN (what the per-identity limit counts), or "?"."""
    cert = stream.connection.get_peer().cert()
    for rdn in (cert or {}).get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return "?"


class LimitedHandler(Handler):
    """grpclib's request handler of one connection, with the stream limits."""

    def __init__(self, *args: Any, limits: TransportLimits, active: Counter[str]) -> None:
        super().__init__(*args)
        self._limits = limits
        self._active = active  # shared by every connection of the server

    def accept(self, stream: H2Stream, headers: Any, release_stream: Callable[[], Any]) -> None:
        who = _who(stream)
        limit = self._limits.max_streams_per_identity
        if self._active[who] >= limit:
            self.loop.create_task(self._refuse(stream, who, limit, release_stream))
            return
        self._active[who] += 1

        def release() -> Any:
            self._active[who] -= 1
            if self._active[who] <= 0:
                del self._active[who]
            return release_stream()

        _bound_messages(stream, self._limits.max_message_bytes)
        super().accept(stream, headers, release)

    async def _refuse(
        self, stream: H2Stream, who: str, limit: int, release_stream: Callable[[], Any]
    ) -> None:
        log.warning("%s is at its %d concurrent calls: one more refused", who, limit)
        headers = [
            (":status", "200"),
            ("content-type", "application/grpc+proto"),
            ("grpc-status", str(Status.RESOURCE_EXHAUSTED.value)),
            ("grpc-message", f"more than {limit} concurrent calls of {who}"),
        ]
        try:  # a trailers-only answer, as grpclib's own refusals are
            await stream.send_headers(headers, end_stream=True)
            if stream.closable:
                stream.reset_nowait()
        except Exception:  # the client went away meanwhile: nothing to answer
            log.debug("refusing a call failed", exc_info=True)
        finally:
            release_stream()


def _bound_messages(stream: H2Stream, limit: int) -> None:
    """Make ``stream.recv_data`` refuse a message body over ``limit`` bytes: grpclib
    reads the 5-byte prefix, then asks for exactly the length it announced."""
    read = stream.recv_data

    async def recv_data(size: int) -> bytes:
        if size > limit:
            raise GRPCError(
                Status.RESOURCE_EXHAUSTED,
                f"request message of {size} bytes is over the limit of {limit} bytes",
            )
        return await read(size)

    stream.recv_data = recv_data  # type: ignore[method-assign]


class LimitedServer(Server):
    """A grpclib Server with ``TransportLimits`` (see the module docstring)."""

    def __init__(self, handlers: Collection[Any], limits: TransportLimits) -> None:
        window = max(limits.window_bytes, 1 << 16)
        super().__init__(
            handlers,
            config=Configuration(
                http2_connection_window_size=window, http2_stream_window_size=window
            ),
        )
        self.limits = limits
        self.connections = 0
        self._active: Counter[str] = Counter()

    def _protocol_factory(self) -> H2Protocol:
        self.__gc_step__()
        handler = LimitedHandler(
            self._mapping,
            self._codec,
            self._status_details_codec,
            self.__dispatch__,
            limits=self.limits,
            active=self._active,
        )
        self._handlers.add(handler)
        return _Tracked(handler, self._config, self._h2_config)

    async def start_limited(self, host: str, port: int, *, ssl_context: ssl.SSLContext) -> None:
        """Listen on every address of ``host`` (like ``Server.start``). OSError if bound."""
        if self._server is not None:
            raise RuntimeError("Server is already started")
        self._server = await _Listener.open(self, host, port, ssl_context)  # type: ignore[assignment]
        self._server_closed_fut = self._loop.create_future()


class _Tracked(H2Protocol):
    """grpclib's protocol, telling when its connection is gone."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.gone: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_lost(self, exc: BaseException | None) -> None:
        with contextlib.suppress(AttributeError):  # lost before it was ever made
            super().connection_lost(exc)
        if not self.gone.done():
            self.gone.set_result(None)


class _Listener:
    """The listening sockets and their accept loops; what grpclib expects of
    ``Server._server`` (``close``, ``wait_closed``, ``sockets``)."""

    def __init__(self, server: LimitedServer, sockets: list[socket.socket], tls: ssl.SSLContext):
        self.server = server
        self.sockets = sockets
        self._tls = tls
        self._loop = asyncio.get_running_loop()
        self._tasks = [self._loop.create_task(self._accept(s)) for s in sockets]
        self._conns: set[asyncio.Task[None]] = set()
        self._transports: set[asyncio.BaseTransport] = set()
        self._warned = False

    @classmethod
    async def open(
        cls, server: LimitedServer, host: str, port: int, tls: ssl.SSLContext
    ) -> _Listener:
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        sockets: list[socket.socket] = []
        try:
            for family, kind, proto, _, addr in dict.fromkeys(infos):
                sock = socket.socket(family, kind, proto)
                sockets.append(sock)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind((addr[0], port, *addr[2:]))
                port = sock.getsockname()[1]  # for port 0: every address on the first's
                sock.listen(256)
                sock.setblocking(False)
        except OSError:
            for sock in sockets:
                sock.close()
            raise
        return cls(server, sockets, tls)

    async def _accept(self, lsock: socket.socket) -> None:
        while True:
            try:
                conn, _ = await self._loop.sock_accept(lsock)
            except OSError as exc:  # EMFILE and the like: back off instead of spinning
                log.warning("accept failed: %s", exc)
                await asyncio.sleep(0.1)
                continue
            if self.server.connections >= self.server.limits.max_connections:
                conn.close()
                if not self._warned:
                    log.warning(
                        "%d connections open: closing new ones until some end",
                        self.server.connections,
                    )
                    self._warned = True
                continue
            self._warned = False
            self.server.connections += 1
            task = self._loop.create_task(self._serve(conn))
            self._conns.add(task)
            task.add_done_callback(self._conns.discard)

    async def _serve(self, conn: socket.socket) -> None:
        try:
            transport, protocol = await self._loop.connect_accepted_socket(
                self.server._protocol_factory,
                conn,
                ssl=self._tls,
                ssl_handshake_timeout=self.server.limits.handshake_timeout,
            )
        except (OSError, ssl.SSLError, TimeoutError, ConnectionError, EOFError) as exc:
            log.debug("connection dropped before serving: %r", exc)
            conn.close()
            self.server.connections -= 1
            return
        self._transports.add(transport)
        try:
            await asyncio.shield(cast(_Tracked, protocol).gone)
        finally:
            self._transports.discard(transport)
            self.server.connections -= 1

    def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for sock in self.sockets:
            sock.close()

    async def wait_closed(self) -> None:
        """Once the accept loops ended, close the connections left (grpclib has
        cancelled their calls by now) and wait for them."""
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.sleep(0)  # let the cancelled calls send what they still send
        for transport in list(self._transports):
            transport.close()
        if self._conns:
            await asyncio.wait(set(self._conns), timeout=5)
