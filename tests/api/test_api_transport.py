"""Transport limits on a real server over real sockets: message size, TLS handshake
timeout, the connection cap, concurrent calls per identity."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from apikit import Cluster, job, running_cluster
from grpclib.const import Status
from grpclib.exceptions import GRPCError

from cronhive.api._generated.cronhive.v1 import cronhive_pb2 as pb
from cronhive.api.server import TransportLimits

LIMITS = TransportLimits(
    max_message_bytes=64 << 10,
    handshake_timeout=0.5,
    max_connections=8,
    max_streams_per_identity=2,
)


@pytest.fixture
async def limited(tmp_path: Path) -> AsyncIterator[Cluster]:
    async with running_cluster(tmp_path, limits=LIMITS) as c:
        yield c


async def test_a_message_over_the_limit_is_refused_before_it_is_read(limited: Cluster) -> None:
    big = job("big", description="x" * (100 << 10))
    with pytest.raises(GRPCError) as err:
        await limited["alice"].jobs.Create(pb.CreateJobRequest(job=big))
    assert err.value.status is Status.RESOURCE_EXHAUSTED
    assert "over the limit of 65536 bytes" in (err.value.message or "")
    # the connection is still good, and a message under the limit goes through
    small = job("small", description="x" * 1000)
    created = await limited["alice"].jobs.Create(pb.CreateJobRequest(job=small))
    assert created.name == "small"


def _raw(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(10)
    return s


def _closed_by_server(s: socket.socket) -> bool:
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True


async def test_a_silent_connection_is_closed_after_the_handshake_timeout(
    limited: Cluster,
) -> None:
    s = await asyncio.to_thread(_raw, limited.port)  # TCP only: never starts TLS
    try:
        assert await asyncio.to_thread(_closed_by_server, s)
    finally:
        s.close()
    await limited["alice"].nodes.List(pb.ListNodesRequest())  # the server still serves


async def test_connections_past_the_cap_are_closed_at_once(limited: Cluster) -> None:
    # the clients of running_cluster hold no connection until their first call
    held = [await asyncio.to_thread(_raw, limited.port) for _ in range(LIMITS.max_connections)]
    try:
        await asyncio.sleep(0.1)
        extra = await asyncio.to_thread(_raw, limited.port)
        extra.settimeout(0.3)  # closed at once, well before the 0.5 s handshake timeout
        try:
            assert await asyncio.to_thread(_closed_by_server, extra)
        finally:
            extra.close()
    finally:
        for s in held:
            s.close()
    for _ in range(50):  # the held ones are gone: new connections are served again
        with contextlib.suppress(GRPCError, OSError):
            await limited["bob"].nodes.List(pb.ListNodesRequest())
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("no connection accepted after the cap freed up")


async def _refused(call: object) -> bool:
    try:
        await call  # type: ignore[misc]
    except GRPCError as exc:
        assert exc.status is Status.RESOURCE_EXHAUSTED, exc
        return True
    return False


async def test_concurrent_calls_are_capped_per_identity(limited: Cluster) -> None:
    alice = limited["alice"]
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(LIMITS.max_streams_per_identity):
            call = await stack.enter_async_context(alice.events.Watch.open())
            stack.push_async_callback(call.cancel)  # first, or the exit waits for the end
            await call.send_message(pb.WatchEventsRequest(), end=True)
        for _ in range(100):  # once both watches are in, the next call is refused
            if await _refused(alice.nodes.List(pb.ListNodesRequest())):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("a third concurrent call of alice was served")
        await limited["bob"].nodes.List(pb.ListNodesRequest())  # others are not held back
    for _ in range(100):  # the watches ended: alice may call again
        if not await _refused(alice.nodes.List(pb.ListNodesRequest())):
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("alice's calls stayed refused after hers ended")
