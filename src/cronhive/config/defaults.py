"""A node's defaults, in one home: what a config file leaves out (config.server) and
what a node started without one gets (engine.node.NodeConfig)."""

from __future__ import annotations

from cronhive.blobs.scripts import DEFAULT_MAX_BYTES

__all__ = [
    "CAPACITY",
    "DRAIN_GRACE",
    "GRACE",
    "LEASE_TTL",
    "LOOKAHEAD",
    "OUTPUT_CAP",
    "SCRIPT_MAX_BYTES",
]

CAPACITY = 16  # runs at once
LEASE_TTL = 5.0  # seconds; renewed every third of it
LOOKAHEAD = 1.0  # seconds a slot is armed (recorded and claimed) before its instant
GRACE = 10.0  # seconds from SIGTERM to SIGKILL when a run is stopped
DRAIN_GRACE = 10.0  # seconds, at SIGTERM, for runs to end before they are handed over
OUTPUT_CAP = 64 * 1024 * 1024  # bytes of output kept per run
SCRIPT_MAX_BYTES = DEFAULT_MAX_BYTES  # largest script body accepted
