"""A real node with the API on 127.0.0.1:0, real certificates and real clients."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grpclib.const import Status
from grpclib.exceptions import GRPCError

from cronhive.api._generated.cronhive.v1 import cronhive_pb2 as pb
from cronhive.api.client import Client, connect
from cronhive.api.server import ApiService, TransportLimits
from cronhive.auth import DEFAULT_POLICY, CertPaths, Policy
from cronhive.auth.certs import init_certs, issue_client_files
from cronhive.engine.clock import Clock
from cronhive.engine.node import NodeConfig, NodeProcess
from cronhive.store import Store, open_store

USERS = {"alice": ("data",), "bob": ("data",), "carol": ()}


def make_certs(directory: Path) -> CertPaths:
    paths = init_certs(directory, dns_names=["localhost"], ip_addresses=["127.0.0.1"], days=30)
    for user, groups in USERS.items():
        issue_client_files(directory, user=user, groups=groups, days=30)
    return paths


@dataclass
class Cluster:
    """One node, its store and a client per user (alice, bob, carol, admin)."""

    node: NodeProcess
    store: Store
    port: int
    certs: CertPaths
    clients: dict[str, Client] = field(default_factory=dict)

    def __getitem__(self, user: str) -> Client:
        return self.clients[user]


@contextlib.asynccontextmanager
async def running_cluster(
    tmp: Path,
    *,
    db_url: str | None = None,
    policy: Policy = DEFAULT_POLICY,
    work: bool = True,
    clock: Clock | None = None,
    lease_ttl: float = 5.0,
    limits: TransportLimits | None = None,
) -> AsyncIterator[Cluster]:
    """`work=False`: the node claims nothing, so no queued command ever runs."""
    certs = make_certs(tmp / "certs")
    store = await open_store(db_url or f"sqlite:///{tmp / 'cronhive.db'}")
    api = ApiService(host="127.0.0.1", port=0, certs=certs, policy=policy, poll=0.2, limits=limits)
    node = NodeProcess(
        store,
        NodeConfig(
            name="n1",
            spool_dir=tmp / "spool",
            grace=1.0,
            work=work,
            lease_ttl=lease_ttl,
            extra=(api,),
        ),
        clock,
    )
    task = asyncio.create_task(node.run())
    cluster = Cluster(node=node, store=store, port=0, certs=certs)
    try:
        cluster.port = port = await asyncio.wait_for(api.bound_port(), 20)
        for user in (*USERS, "admin"):
            cluster.clients[user] = await connect(f"127.0.0.1:{port}", certs.dir, cert_name=user)
        yield cluster
    finally:
        for client in cluster.clients.values():
            await client.aclose()
        node.shutdown()
        await asyncio.wait_for(task, 30)
        await store.close()


async def status_of(call: Any) -> Status | None:
    """The status a call ends with (None for OK)."""
    try:
        await call
    except GRPCError as exc:
        return exc.status
    return None


def job(name: str, **fields: Any) -> pb.Job:
    """A valid job message (enabled, no schedule unless given)."""
    fields.setdefault("command", ["true"])
    fields.setdefault("enabled", True)
    return pb.Job(name=name, **fields)


async def create(client: Client, name: str, **fields: Any) -> pb.Job:
    reply: pb.Job = await client.jobs.Create(pb.CreateJobRequest(job=job(name, **fields)))
    return reply


async def wait_terminal(client: Client, execution_id: str, within: float = 20) -> pb.Execution:
    async with asyncio.timeout(within):
        while True:
            e: pb.Execution = await client.runs.GetStatus(pb.GetStatusRequest(id=execution_id))
            if e.state not in ("queued", "running"):
                return e
            await asyncio.sleep(0.05)
