"""A Runner on a fresh spool folder, once unisolated and once sandboxed (bubblewrap); every
run it started is stopped at the end.

The sandboxed runner is the node's default. Where bubblewrap cannot work, its tests skip
saying why, except under CI, where they fail (runnerkit.require_sandbox). `run_id` is a run id
of the test's own (runnerkit.unique_run_id).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from _shared.sandbox import folder_outside_tmp
from runnerkit import require_sandbox, unique_run_id

from cronhive.runner import Runner


@pytest.fixture(params=["none", "bwrap"])
async def runner(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Runner]:
    sb = require_sandbox() if request.param == "bwrap" else None
    r = Runner(tmp_path / "spool", default_grace=2.0, drain_timeout=0.5, sandbox=sb)
    yield r
    await r.stop_all(0)


@pytest.fixture
def run_id() -> str:
    return unique_run_id()


@pytest.fixture
def visible_dir() -> Iterator[Path]:
    """A world-readable folder outside /tmp (a sandbox has its own /tmp)."""
    with folder_outside_tmp("cronhive-runner-", 0o755) as d:
        yield d
