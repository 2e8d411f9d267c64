"""The node's default sandbox for tests, or a skip (a failure under CI) saying why not."""

from __future__ import annotations

import functools
import os

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
