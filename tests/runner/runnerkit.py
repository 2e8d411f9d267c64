"""The sandbox the runner tests use (`_shared.sandbox`), and run ids no other test uses."""

from __future__ import annotations

import uuid

from _shared.sandbox import require_sandbox

__all__ = ["require_sandbox", "unique_run_id"]


def unique_run_id(prefix: str = "r") -> str:
    """A run id of one test alone. The runner finds a run's escaped processes, to kill them,
    by ``CRONHIVE_RUN_ID`` across the whole host (and names its cgroup after the run), where
    other tests run too: other xdist workers, other checkouts' suites."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"
