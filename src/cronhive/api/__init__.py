"""api: the gRPC API every node serves (grpclib over mutual TLS 1.3); see docs/api.md.

    ApiService(host=, port=, certs=, policy=)       a NodeConfig.extra service; `await bound_port()`
    connect(server, certs_dir, cert_name=) -> Client   jobs/runs/nodes/events stubs

errors.py holds the one table from cronhive errors to gRPC status codes; validate.py
every request limit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cronhive.api.client import Client, connect
    from cronhive.api.server import ApiServer, ApiService, start_api

__all__ = ["ApiServer", "ApiService", "Client", "connect", "start_api"]

# Loaded on first use: a client (the CLI) imports cronhive.api.client and the generated
# stubs, and must not pay for the server's store, SQLAlchemy and Alembic on every command.
_LAZY = {
    "Client": "cronhive.api.client",
    "connect": "cronhive.api.client",
    "ApiServer": "cronhive.api.server",
    "ApiService": "cronhive.api.server",
    "start_api": "cronhive.api.server",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
