"""NodeService: the nodes of the cluster (any authenticated caller may list them; only
admins see how many runs each runs, others how many of theirs: auth.nodes_as_seen)."""

from __future__ import annotations

from grpclib.server import Stream

from cronhive.api._generated.cronhive.v1 import cronhive_grpc
from cronhive.api._generated.cronhive.v1 import cronhive_pb2 as pb
from cronhive.api._service import Servicer
from cronhive.api.convert import node_pb
from cronhive.api.errors import guard
from cronhive.auth.authz import nodes_as_seen
from cronhive.model import RunState

__all__ = ["NodeService"]

MAX_RUNNING = 100_000  # runs of one caller counted; far above any cluster's capacity


class NodeService(Servicer, cronhive_grpc.NodeServiceBase):
    async def List(self, stream: Stream[pb.ListNodesRequest, pb.ListNodesResponse]) -> None:
        async with guard("NodeService.List"):
            _, _, visible = await self.request(stream)
            now = self.api.clock.now()
            nodes = await self.api.store.list_nodes(now=now)
            running = []
            if visible is not None:
                running = await self.api.store.list_executions(
                    visible_to=visible, states={RunState.RUNNING}, limit=MAX_RUNNING
                )
            nodes = nodes_as_seen(nodes, visible, running)
            await stream.send_message(pb.ListNodesResponse(nodes=[node_pb(n, now) for n in nodes]))
