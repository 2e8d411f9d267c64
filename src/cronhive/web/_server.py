"""Serving the web app with Hypercorn over TLS 1.3 (our CA; a client certificate is
verified when offered, CERT_OPTIONAL) beside the engine, as a NodeConfig.extra entry."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import traceback
from collections.abc import Callable
from typing import Any, Unpack

from hypercorn.asyncio import serve
from hypercorn.config import Config

from cronhive.auth import CertPaths, server_context
from cronhive.errors import InvalidInput
from cronhive.service import Service
from cronhive.service.frontend import FrontEnd, Where
from cronhive.web._app import create_app
from cronhive.web._deps import Web

__all__ = ["CLOSE_TIMEOUT", "WebService", "web_ssl_context"]

log = logging.getLogger("cronhive.web")
# Open requests (live tails end at once) get this long to finish at shutdown; idle
# keep-alive connections are dropped after it.
CLOSE_TIMEOUT = 1.0


def web_ssl_context(certs: CertPaths) -> ssl.SSLContext:
    """`auth.tls.server_context` (TLS 1.3 only, our CA only) for browsers: HTTP/2 and
    HTTP/1.1, and a client certificate optional (verified against our CA if offered)."""
    ctx = server_context(certs, alpn=("h2", "http/1.1"))
    ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx


class _Config(Config):
    """Hypercorn's config with our TLS context instead of the one it builds (TLS 1.2+)."""

    def __init__(self, ctx: ssl.SSLContext) -> None:
        super().__init__()
        self._ctx = ctx

    @property
    def ssl_enabled(self) -> bool:
        return True

    def create_ssl_context(self) -> ssl.SSLContext | None:
        return self._ctx


def _closed_stream_data(exc: BaseException | None) -> bool:
    """Hypercorn's KeyError for data arriving on an HTTP/2 stream it has already answered
    and closed (pgjones/hypercorn#329, fixes not released): what a gRPC client pointed at
    the web port causes (the 404 goes out before its request body). Also the error of
    closing that connection afterwards (an SSLError raised while handling the KeyError)."""
    for _ in range(4):  # the KeyError, or what went wrong while handling it
        if exc is None:
            return False
        if _stream_key_error(exc):
            return True
        exc = exc.__context__
    return False


def _stream_key_error(exc: BaseException) -> bool:
    if isinstance(exc, BaseExceptionGroup):
        return all(_stream_key_error(e) for e in exc.exceptions)
    if not isinstance(exc, KeyError) or exc.__traceback__ is None:
        return False
    last = traceback.extract_tb(exc.__traceback__)[-1]
    return last.filename.replace("\\", "/").endswith("hypercorn/protocol/h2.py")


def _quiet_closed_streams(loop: asyncio.AbstractEventLoop) -> Callable[[], None]:
    """Logs hypercorn#329 as one line instead of a traceback; everything else goes to the
    previous handler. Returns the undo."""
    previous = loop.get_exception_handler()

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if _closed_stream_data(context.get("exception")):
            log.warning(
                "web: a client sent data on an HTTP/2 stream already answered (a gRPC client "
                "on the web port?); its connection is closed"
            )
        elif previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)
    return lambda: loop.set_exception_handler(previous)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise InvalidInput(
            f"web: cannot listen on {host}:{port} ({exc.strerror})", field="web"
        ) from exc
    return sock


class WebService(FrontEnd):
    """The web UI of a node, as a NodeConfig.extra entry (service.FrontEnd). Raises
    InvalidInput for bad certificate files or an address that cannot be bound (field
    ``web``)."""

    __name__ = "web"

    def __init__(self, *, handshake_timeout: float = 10.0, **where: Unpack[Where]) -> None:
        super().__init__(**where)
        self.handshake_timeout = handshake_timeout  # a silent TLS connection is closed then
        self.web: Web | None = None

    async def serve(self, service: Service, bound: asyncio.Future[int]) -> None:
        web = Web(service=service)
        self.web = web
        config = _Config(web_ssl_context(self.certs))
        sock = _bind(self.host, self.port)
        port = int(sock.getsockname()[1])
        # Hypercorn takes over the listening socket by descriptor.
        config.bind = [f"fd://{sock.detach()}"]
        config.errorlog = log
        config.accesslog = None
        config.graceful_timeout = CLOSE_TIMEOUT
        config.ssl_handshake_timeout = self.handshake_timeout
        stop = asyncio.Event()

        async def shutdown() -> None:
            await stop.wait()

        app: Any = create_app(web)
        undo = _quiet_closed_streams(asyncio.get_running_loop())
        server = asyncio.create_task(serve(app, config, shutdown_trigger=shutdown))
        bound.set_result(port)
        log.info("web UI on https://%s:%d (TLS 1.3)", self.host, port)
        try:
            await asyncio.shield(server)
        finally:
            web.closing.set()  # live tails end, so the graceful close is quick
            stop.set()
            try:
                async with asyncio.timeout(CLOSE_TIMEOUT + 10):
                    await server
            except TimeoutError:
                log.warning("web server still closing after %.0fs", CLOSE_TIMEOUT + 10)
            finally:
                undo()
