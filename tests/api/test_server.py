"""The server itself: TLS 1.3 with a client certificate or nothing, health, clean close."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest
from apikit import Cluster, running_cluster, wait_terminal
from grpclib.exceptions import GRPCError, StreamTerminatedError
from grpclib.health.v1 import health_grpc, health_pb2

from cronhive.api._generated.cronhive.v1 import cronhive_grpc
from cronhive.api._generated.cronhive.v1 import cronhive_pb2 as pb
from cronhive.api.client import Channel
from cronhive.auth import client_context
from cronhive.auth.certs import CertPaths, init_certs
from cronhive.errors import InvalidInput

REFUSED = (ssl.SSLError, ConnectionError, StreamTerminatedError, GRPCError, OSError)


async def test_health_and_nodes(cluster: Cluster) -> None:
    health = health_grpc.HealthStub(cluster["carol"].channel)
    reply = await health.Check(health_pb2.HealthCheckRequest())
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    nodes = await cluster["carol"].nodes.List(pb.ListNodesRequest())
    assert [(n.name, n.alive, n.capacity) for n in nodes.nodes] == [("n1", True, 16)]


@pytest.mark.parametrize(
    "service",
    [
        "cronhive.v1.JobService",
        "cronhive.v1.RunService",
        "cronhive.v1.NodeService",
        "cronhive.v1.EventService",
        "cronhive.v1.TokenService",
    ],
)
async def test_health_per_service_name(cluster: Cluster, service: str) -> None:
    health = health_grpc.HealthStub(cluster["carol"].channel)
    reply = await health.Check(health_pb2.HealthCheckRequest(service=service))
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    with pytest.raises(GRPCError) as unknown:
        await health.Check(health_pb2.HealthCheckRequest(service="cronhive.v1.NoSuchService"))
    assert unknown.value.status.name == "NOT_FOUND"


async def test_tls12_is_refused(cluster: Cluster) -> None:
    certs = cluster.certs
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_verify_locations(cafile=str(certs.ca_cert))
    ctx.load_cert_chain(str(certs.client_cert("alice")), str(certs.client_key("alice")))
    with pytest.raises((ssl.SSLError, ConnectionError)):
        await asyncio.open_connection("127.0.0.1", cluster.port, ssl=ctx)


async def test_no_client_certificate_is_refused(cluster: Cluster) -> None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_verify_locations(cafile=str(cluster.certs.ca_cert))
    ctx.set_alpn_protocols(["h2"])
    channel = Channel("127.0.0.1", cluster.port, ssl=ctx)
    try:
        with pytest.raises(REFUSED):
            await cronhive_grpc.NodeServiceStub(channel).List(pb.ListNodesRequest())
    finally:
        await channel.aclose()


async def test_certificate_of_another_ca_is_refused(cluster: Cluster, tmp_path: Path) -> None:
    other = init_certs(tmp_path / "other", days=30)
    ctx = client_context(cluster.certs.ca_cert, other.client_cert(), other.client_key())
    channel = Channel("127.0.0.1", cluster.port, ssl=ctx)
    try:
        with pytest.raises(REFUSED):
            await cronhive_grpc.NodeServiceStub(channel).List(pb.ListNodesRequest())
    finally:
        await channel.aclose()


async def test_close_ends_live_streams(tmp_path: Path) -> None:
    async with running_cluster(tmp_path) as cluster:
        alice = cluster["alice"]
        run = await alice.runs.Start(pb.StartRunRequest(command=["sleep 30"], shell=True))
        async with alice.events.Watch.open() as watch:
            await watch.send_message(pb.WatchEventsRequest(after_id=0), end=True)
            assert await asyncio.wait_for(watch.recv_message(), 10) is not None
            cluster.node.shutdown()  # the node stops; the API closes its calls
            with pytest.raises(REFUSED):
                async with asyncio.timeout(20):
                    while await watch.recv_message() is not None:
                        pass
                    await watch.recv_trailing_metadata()
                    raise StreamTerminatedError("ended")  # ended cleanly is fine too
    assert run.id


async def test_port_in_use_is_invalid_input(tmp_path: Path) -> None:
    from cronhive.api._service import Api
    from cronhive.api.server import start_api
    from cronhive.auth import DEFAULT_POLICY
    from cronhive.engine.clock import SystemClock
    from cronhive.engine.hub import Hub
    from cronhive.service import Service
    from cronhive.store import open_store

    certs: CertPaths = init_certs(tmp_path / "certs", days=30)
    store = await open_store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    service = Service(store=store, clock=SystemClock(), hub=Hub(), policy=DEFAULT_POLICY)
    api = Api(service=service)
    first = await start_api(api, host="127.0.0.1", port=0, certs=certs)
    try:
        with pytest.raises(InvalidInput) as err:
            await start_api(api, host="127.0.0.1", port=first.port, certs=certs)
        assert err.value.field == "listen"
    finally:
        await first.close()
        await store.close()


@pytest.mark.postgres
async def test_smoke_on_postgresql(tmp_path: Path, pg_database: object) -> None:
    url = pg_database(None)  # type: ignore[operator]
    async with running_cluster(tmp_path, db_url=url) as cluster:
        alice, carol = cluster["alice"], cluster["carol"]
        job = await alice.jobs.Create(
            pb.CreateJobRequest(job=pb.Job(name="pg", command=["true"], enabled=True))
        )
        with pytest.raises(GRPCError):
            await carol.jobs.Get(pb.GetJobRequest(id=job.id))
        run = await alice.runs.Start(
            pb.StartRunRequest(command=["sh", "-c", "echo hi; echo err >&2; exit 3"])
        )
        chunks = await asyncio.wait_for(
            alice.runs.StreamOutput(pb.StreamOutputRequest(id=run.id, follow=True)), 20
        )
        assert b"".join(c.data for c in chunks if c.stream == "stdout") == b"hi\n"
        assert b"".join(c.data for c in chunks if c.stream == "stderr") == b"err\n"
        final = await wait_terminal(alice, run.id)
        assert final.state == "failed" and final.exit_code == 3


async def test_reflection_lists_the_services(cluster: Cluster) -> None:
    from grpclib.reflection.v1 import reflection_grpc, reflection_pb2

    stub = reflection_grpc.ServerReflectionStub(cluster["carol"].channel)
    replies = await stub.ServerReflectionInfo(
        [reflection_pb2.ServerReflectionRequest(list_services="")]
    )
    names = {s.name for s in replies[0].list_services_response.service}
    assert {
        "cronhive.v1.JobService",
        "cronhive.v1.RunService",
        "cronhive.v1.NodeService",
        "cronhive.v1.EventService",
        "grpc.health.v1.Health",
    } <= names
