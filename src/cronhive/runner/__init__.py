"""Runs processes on this node, knows their state, and keeps their output.

Public API::

    runner = Runner(spool_dir, default_grace=10.0)
    handle = await runner.start(RunSpec(run_id=..., argv=[...]), sink=None)
    handle.state, handle.pid, handle.result
    await handle.wait() / await handle.stop(grace)
    async for data in handle.follow(Stream.STDOUT, offset=0): ...
    runner.get(run_id); await runner.stop_all(grace); runner.discard(run_id)

See docs/runner.md for what a run sees, stop semantics, limits and the spool layout.
"""

from __future__ import annotations

from cronhive.runner._handle import RunHandle
from cronhive.runner._models import (
    DEFAULT_LIMITS,
    Chunk,
    Limits,
    OutputSink,
    RunResult,
    RunSpec,
    RunState,
    Stream,
)
from cronhive.runner._runner import Runner
from cronhive.runner._sandbox import Sandbox

__all__ = [
    "DEFAULT_LIMITS",
    "Chunk",
    "Limits",
    "OutputSink",
    "RunHandle",
    "RunResult",
    "RunSpec",
    "RunState",
    "Runner",
    "Sandbox",
    "Stream",
]
