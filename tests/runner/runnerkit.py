"""The sandbox the runner tests use, or a skip (a failure under CI) saying why not; run ids
no other test uses."""

from __future__ import annotations

import functools
import os
import uuid

import pytest

from cronhive.runner import Sandbox


@functools.cache
def _probe() -> Sandbox:
    return Sandbox.probe()


def require_sandbox() -> Sandbox:
    """The default sandbox; skips where bubblewrap cannot work, fails under CI (which must
    never pass by skipping the sandboxed tests)."""
    sb = _probe()
    if sb.unavailable is not None:
        msg = f"bubblewrap unusable here: {sb.unavailable}"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return sb


def unique_run_id(prefix: str = "r") -> str:
    """A run id of one test alone. The runner finds a run's escaped processes, to kill them,
    by ``CRONHIVE_RUN_ID`` across the whole host (and names its cgroup after the run), where
    other tests run too: other xdist workers, other checkouts' suites."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"
