"""Prometheus metrics and health probes of a node (see docs/operations.md).

metrics = Metrics(); metrics.instrument(store); metrics.instrument_worker(worker)
MetricsService(host=..., port=..., metrics=metrics)   for NodeConfig.extra
"""

from __future__ import annotations

from cronhive.metrics._instruments import Metrics, owner_class
from cronhive.metrics._server import MetricsService, readiness

__all__ = ["Metrics", "MetricsService", "owner_class", "readiness"]
