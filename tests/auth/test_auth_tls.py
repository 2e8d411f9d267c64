"""mTLS over real loopback connections: who gets in, and that the rest fail in the handshake."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from grpclib.exceptions import StreamTerminatedError
from grpclib.health.service import Health
from grpclib.health.v1.health_grpc import HealthStub
from grpclib.health.v1.health_pb2 import HealthCheckRequest, HealthCheckResponse
from grpclib.server import Server, Stream

from cronhive.api._generated.cronhive.v1 import cronhive_grpc, cronhive_pb2
from cronhive.api.client import Channel
from cronhive.auth.certs import CertPaths, init_certs, issue_client, load_ca, write_pair
from cronhive.auth.identity import identity_of
from cronhive.auth.tls import client_context, server_context
from cronhive.errors import InvalidInput


class WhoAmI(cronhive_grpc.NodeServiceBase):
    """NodeService.List answering one node that describes the caller: name = user,
    tags = groups and ``role:<role>``. Counts calls, so a test can show none got through."""

    def __init__(self) -> None:
        self.calls = 0

    async def List(
        self, stream: Stream[cronhive_pb2.ListNodesRequest, cronhive_pb2.ListNodesResponse]
    ) -> None:
        self.calls += 1
        await stream.recv_message()
        me = identity_of(stream)
        tags = sorted(me.groups) + sorted(f"role:{r}" for r in me.roles)
        await stream.send_message(
            cronhive_pb2.ListNodesResponse(nodes=[cronhive_pb2.Node(name=me.user, tags=tags)])
        )


@dataclass(frozen=True, kw_only=True)
class Running:
    paths: CertPaths
    port: int
    whoami: WhoAmI


@pytest.fixture
async def server(pki: CertPaths) -> AsyncIterator[Running]:
    whoami = WhoAmI()
    srv = Server([whoami, Health()])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    asyncio.get_running_loop().set_debug(True)  # so refused handshakes are logged
    await srv.start(sock=sock, ssl=server_context(pki))
    try:
        yield Running(paths=pki, port=port, whoami=whoami)
    finally:
        srv.close()
        await srv.wait_closed()
        sock.close()


def _issue(paths: CertPaths, user: str, groups: list[str], **kw: object) -> ssl.SSLContext:
    pair = issue_client(load_ca(paths), user=user, groups=groups, **kw)  # type: ignore[arg-type]
    cert, key = paths.client_cert(user), paths.client_key(user)
    write_pair(pair, cert, key)
    return client_context(paths.ca_cert, cert, key)


async def _whoami(port: int, ctx: ssl.SSLContext) -> cronhive_pb2.Node:
    channel = Channel("127.0.0.1", port, ssl=ctx)
    try:
        reply = await cronhive_grpc.NodeServiceStub(channel).List(
            cronhive_pb2.ListNodesRequest(), timeout=10
        )
    finally:
        await channel.aclose()
    (node,) = reply.nodes
    return node


def _tls_connect(port: int, ctx: ssl.SSLContext) -> tuple[str, str | None, bytes]:
    """A blocking TLS connection: handshake, send the HTTP/2 preface, read once.

    Returns (version, ALPN, first byte; b"" when the server hung up) or raises the
    SSLError/EOF that ended the handshake."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        tls.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        return str(tls.version()), tls.selected_alpn_protocol(), tls.recv(1)


def _server_handshake_failures(caplog: pytest.LogCaptureFixture) -> list[str]:
    """OpenSSL reasons of the handshakes the server's event loop refused.

    asyncio closes a failed server-side handshake without sending the alert and logs it
    only in debug mode (the server fixture turns that on), so this is where it shows."""
    return [
        str(r.exc_info[1])
        for r in caplog.records
        if r.name == "asyncio"
        and "SSL handshake failed" in r.getMessage()
        and r.exc_info
        and isinstance(r.exc_info[1], ssl.SSLError)
    ]


async def _assert_refused_in_handshake(
    server: Running, ctx: ssl.SSLContext, caplog: pytest.LogCaptureFixture, reason: str
) -> None:
    """The server's handshake fails with `reason`; the client gets no HTTP/2 byte (under
    TLS 1.3 the server checks the client certificate after the client's Finished, so the
    client sees either a failed handshake or an immediate hang-up); no RPC gets through."""
    caplog.set_level(logging.DEBUG, logger="asyncio")
    try:
        *_, first = await asyncio.to_thread(_tls_connect, server.port, ctx)
    except (ssl.SSLError, ConnectionError):
        first = b""
    assert first == b""
    for _ in range(100):  # the server's side of the failure is logged on its next loop turn
        if _server_handshake_failures(caplog):
            break
        await asyncio.sleep(0.01)
    (failure,) = _server_handshake_failures(caplog)
    assert reason in failure
    await _rpc_refused(server.port, ctx)
    assert server.whoami.calls == 0


async def _rpc_refused(port: int, ctx: ssl.SSLContext) -> None:
    channel = Channel("127.0.0.1", port, ssl=ctx)
    try:
        with pytest.raises((ssl.SSLError, ConnectionError, StreamTerminatedError)):
            await cronhive_grpc.NodeServiceStub(channel).List(
                cronhive_pb2.ListNodesRequest(), timeout=10
            )
    finally:
        await channel.aclose()


async def test_valid_client_is_identified_by_cn_and_ou(server: Running) -> None:
    ctx = _issue(server.paths, "alice", ["ops", "data"])
    node = await _whoami(server.port, ctx)
    assert node.name == "alice"
    # ops/data from the certificate; scheduler from the default policy.
    assert list(node.tags) == ["data", "ops", "role:scheduler"]


async def test_dev_admin_certificate_is_admin(server: Running) -> None:
    p = server.paths
    node = await _whoami(server.port, client_context(p.ca_cert, p.client_cert(), p.client_key()))
    assert node.name == "admin"
    assert "role:admin" in node.tags


async def test_health_service_serves_on_the_same_port(server: Running) -> None:
    p = server.paths
    channel = Channel(
        "127.0.0.1", server.port, ssl=client_context(p.ca_cert, p.client_cert(), p.client_key())
    )
    try:
        reply = await HealthStub(channel).Check(HealthCheckRequest(), timeout=10)
    finally:
        await channel.aclose()
    assert reply.status == HealthCheckResponse.SERVING


async def test_negotiates_tls13_and_h2(server: Running) -> None:
    p = server.paths
    ctx = client_context(p.ca_cert, p.client_cert(), p.client_key())
    version, alpn, first = await asyncio.to_thread(_tls_connect, server.port, ctx)
    assert (version, alpn) == ("TLSv1.3", "h2")
    assert first  # the server's HTTP/2 SETTINGS frame: the connection is usable


def _no_cert_context(ca: Path) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_verify_locations(cafile=str(ca))
    ctx.set_alpn_protocols(["h2"])
    return ctx


async def test_refuses_client_without_certificate(
    server: Running, caplog: pytest.LogCaptureFixture
) -> None:
    ctx = _no_cert_context(server.paths.ca_cert)
    await _assert_refused_in_handshake(server, ctx, caplog, "peer did not return a certificate")


async def test_refuses_certificate_from_another_ca(
    server: Running, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    other = init_certs(tmp_path / "other", days=30)
    # Trusts our server, but presents a certificate signed by a different CA.
    ctx = client_context(server.paths.ca_cert, other.client_cert(), other.client_key())
    await _assert_refused_in_handshake(
        server, ctx, caplog, "unable to get local issuer certificate"
    )


async def test_refuses_expired_certificate(
    server: Running, caplog: pytest.LogCaptureFixture
) -> None:
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=30)
    ctx = _issue(server.paths, "old", [], days=2, now=long_ago)
    await _assert_refused_in_handshake(server, ctx, caplog, "certificate has expired")


async def test_refuses_tls12_only_client(server: Running, caplog: pytest.LogCaptureFixture) -> None:
    p = server.paths
    ctx = client_context(p.ca_cert, p.client_cert(), p.client_key())
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    await _assert_refused_in_handshake(server, ctx, caplog, "unsupported protocol")


async def test_client_refuses_server_from_another_ca(server: Running, tmp_path: Path) -> None:
    other = init_certs(tmp_path / "other", days=30)
    ctx = client_context(other.ca_cert, other.client_cert(), other.client_key())
    with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
        await asyncio.to_thread(_tls_connect, server.port, ctx)


def test_contexts_pin_tls13_and_require_certificates(pki: CertPaths) -> None:
    srv = server_context(pki)
    cli = client_context(pki.ca_cert, pki.client_cert(), pki.client_key())
    for ctx in (srv, cli):
        assert ctx.minimum_version == ctx.maximum_version == ssl.TLSVersion.TLSv1_3
        assert ctx.verify_mode == ssl.CERT_REQUIRED
    assert cli.check_hostname


def test_context_names_the_bad_file(pki: CertPaths) -> None:
    pki.server_key.write_bytes(pki.client_key().read_bytes())
    with pytest.raises(InvalidInput, match=r"server\.key: key does not match"):
        server_context(pki)
    with pytest.raises(InvalidInput, match=r"nope\.crt: no such file"):
        client_context(pki.dir / "nope.crt", pki.client_cert(), pki.client_key())
