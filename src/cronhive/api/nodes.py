"""NodeService: the nodes of the cluster (any authenticated caller may list them; only
admins see how many runs each runs, others how many of theirs: auth.nodes_as_seen)."""

from __future__ import annotations

from grpclib.server import Stream

from cronhive.api._generated.cronhive.v1 import cronhive_grpc
from cronhive.api._generated.cronhive.v1 import cronhive_pb2 as pb
from cronhive.api._service import Servicer
from cronhive.api.convert import node_pb
from cronhive.api.errors import guard

__all__ = ["NodeService"]


class NodeService(Servicer, cronhive_grpc.NodeServiceBase):
    async def List(self, stream: Stream[pb.ListNodesRequest, pb.ListNodesResponse]) -> None:
        async with guard("NodeService.List"):
            _, who = await self.request(stream)
            nodes = await self.svc.list_nodes(who)
            now = self.svc.clock.now()
            await stream.send_message(pb.ListNodesResponse(nodes=[node_pb(n, now) for n in nodes]))
