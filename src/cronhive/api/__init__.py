"""api: the gRPC API every node serves (grpclib over mutual TLS 1.3); see docs/api.md.

    serve_api(ctx, host=, port=, certs=, policy=)   a NodeConfig.extra service
    ApiService(host=, port=, certs=, policy=)       the same, with `await bound_port()`
    connect(server, certs_dir, cert_name=) -> Client   jobs/runs/nodes/events stubs

errors.py holds the one table from cronhive errors to gRPC status codes; validate.py
every request limit.
"""

from __future__ import annotations

from cronhive.api.client import Client, connect
from cronhive.api.server import ApiServer, ApiService, serve_api, start_api

__all__ = ["ApiServer", "ApiService", "Client", "connect", "serve_api", "start_api"]
