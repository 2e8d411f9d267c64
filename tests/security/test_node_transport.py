"""Transport limits of a real node process: a 64 MiB gRPC request is refused from its
length prefix without the node's memory growing by more than a few MiB (it was 130 -> 224
MB), and connections that never start TLS are closed after the handshake timeout."""

from __future__ import annotations

import socket
from pathlib import Path

import psutil
import pytest
from grpclib.const import Status
from grpclib.exceptions import GRPCError
from securitykit import Node, running_node

from cronhive.api._generated.cronhive.v1 import cronhive_pb2 as pb
from cronhive.api.client import connect

MiB = 1 << 20


def _memory(pid: int) -> tuple[int, int]:
    """(RSS, peak RSS) of a process, in bytes."""
    with open(f"/proc/{pid}/status") as f:
        fields = dict(line.split(":", 1) for line in f)
    return psutil.Process(pid).memory_info().rss, int(fields["VmHWM"].split()[0]) * 1024


async def test_a_64_mib_message_is_refused_without_the_node_buffering_it(node: Node) -> None:
    huge = pb.CreateJobRequest(
        job=pb.Job(name="huge", command=["true"], description="x" * (64 * MiB))
    )
    async with await connect(node.server, node.certs) as client:
        await client.nodes.List(pb.ListNodesRequest())  # connected, node warmed up
        rss0, peak0 = _memory(node.proc.pid)
        for _ in range(3):
            with pytest.raises(GRPCError) as err:
                await client.jobs.Create(huge)
            assert err.value.status is Status.RESOURCE_EXHAUSTED
            assert "over the limit of 4194304 bytes" in (err.value.message or "")
        rss1, peak1 = _memory(node.proc.pid)
        assert await client.nodes.List(pb.ListNodesRequest())  # the connection still serves
    assert rss1 - rss0 < 8 * MiB, (rss0, rss1)
    assert peak1 - peak0 < 8 * MiB, (peak0, peak1)


def _closed_within(address: str, seconds: float) -> bool:
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port))) as s:  # TCP only: never starts TLS
        s.settimeout(seconds)
        try:
            return s.recv(1) == b""
        except ConnectionResetError:
            return True


def test_silent_connections_are_closed_after_the_handshake_timeout(tmp_path: Path) -> None:
    config = tmp_path / "node.toml"
    config.write_text("tls_handshake_timeout = 1.0\n")
    with running_node(tmp_path / "data", ["--config", str(config)]) as n:
        # closed by the node (the default was asyncio's 60 s), on both ports
        assert _closed_within(n.server, 20)
        assert _closed_within(n.web, 20)
        assert n.ok("nodes")
