"""The node's default sandbox for tests, or a skip (a failure under CI) saying why not; and
folders its runs can see."""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

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


@contextlib.contextmanager
def folder_outside_tmp(prefix: str, mode: int) -> Iterator[Path]:
    """A fresh folder a sandboxed run can see (a sandbox has its own /tmp), with `mode`;
    removed afterwards."""
    base = Path("/var/lib") if os.geteuid() == 0 else Path.home() / ".cache"
    d = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
    d.chmod(mode)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)
