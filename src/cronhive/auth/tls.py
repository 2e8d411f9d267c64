"""TLS 1.3-only, mutually authenticated `ssl.SSLContext`s for every listening port.

Both ends pin the protocol to TLS 1.3 (minimum and maximum), trust only our CA (never the
system store) and advertise ALPN ``h2``, which grpclib requires. The files are read and
checked first, so a bad file is reported as InvalidInput naming it rather than as an
OpenSSL error code. A server context checks them only when OpenSSL refuses one (to say
why): a node so never loads cryptography (~11 MB); `cronhive server` checks its files
fully, in a child process, before it listens (cronhive.auth._check).
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from pathlib import Path

from cronhive.auth._paths import CertPaths
from cronhive.errors import InvalidInput

__all__ = ["client_context", "server_context"]


def _check_files(ca: Path, cert: Path, key: Path) -> None:
    """InvalidInput naming a missing, unreadable or bad file, or a key not matching."""
    from cronhive.auth._pem import load_cert, load_pair  # cryptography: loaded only here

    load_cert(ca)
    load_pair(cert, key)


def _pin_tls13(ctx: ssl.SSLContext, ca: Path, cert: Path, key: Path, alpn: Sequence[str]) -> None:
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    ctx.verify_mode = ssl.CERT_REQUIRED
    try:
        ctx.load_verify_locations(cafile=str(ca))
        # The empty password: an encrypted key fails here rather than prompt on a tty.
        ctx.load_cert_chain(certfile=str(cert), keyfile=str(key), password=b"")
    except (ssl.SSLError, OSError) as exc:
        _check_files(ca, cert, key)  # says which file is bad and why
        reason = exc.reason if isinstance(exc, ssl.SSLError) else exc.strerror
        raise InvalidInput(f"{cert}: cannot be used for TLS ({reason})", field=str(cert)) from None
    ctx.set_alpn_protocols(list(alpn))


def server_context(paths: CertPaths, *, alpn: Sequence[str] = ("h2",)) -> ssl.SSLContext:
    """A server context: TLS 1.3 only, client certificate required and verified against
    ``paths.ca_cert`` alone, serving ``paths.server_cert``.

    `alpn` defaults to ``h2`` (gRPC); the web UI may pass ``("h2", "http/1.1")``.
    Raises InvalidInput naming a missing or bad file.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _pin_tls13(ctx, paths.ca_cert, paths.server_cert, paths.server_key, alpn)
    return ctx


def client_context(
    ca: Path, cert: Path, key: Path, *, alpn: Sequence[str] = ("h2",)
) -> ssl.SSLContext:
    """A client context: TLS 1.3 only, presents `cert`/`key`, verifies the server against
    `ca` alone, host name checked (DNS or IP SAN).

    Raises InvalidInput naming a missing or bad file.
    """
    _check_files(ca, cert, key)  # a client (the CLI) checks first, as it always did
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # check_hostname=True by default
    _pin_tls13(ctx, ca, cert, key, alpn)
    return ctx
