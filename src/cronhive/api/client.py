"""A small async client over mutual TLS 1.3, for the CLI and tests.

    async with await connect("127.0.0.1:7433", certs_dir, cert_name="alice") as client:
        job = await client.jobs.Get(pb.GetJobRequest(id=...))

`jobs`, `runs`, `nodes` and `events` are the generated grpclib stubs (cronhive.v1); a
failed call raises `grpclib.exceptions.GRPCError` with the status of docs/api.md.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType

from grpclib.client import Channel

from cronhive.api._generated.cronhive.v1 import cronhive_grpc
from cronhive.auth import CertPaths, client_context
from cronhive.config.server import parse_listen

__all__ = ["Client", "connect"]


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
        """Closes the connection; calls in flight fail."""
        self.channel.close()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


async def connect(server: str, certs_dir: Path, *, cert_name: str = "admin") -> Client:
    """A client of `server` (``host:port``) presenting ``<certs_dir>/<cert_name>.crt/.key``
    and trusting only ``<certs_dir>/ca.crt``. The connection opens on the first call.

    Raises InvalidInput for a malformed address or a missing/bad certificate file.
    """
    host, port = parse_listen(server, field="server")
    paths = CertPaths(dir=certs_dir)
    ssl = client_context(paths.ca_cert, paths.client_cert(cert_name), paths.client_key(cert_name))
    return Client(Channel(host, port, ssl=ssl))
