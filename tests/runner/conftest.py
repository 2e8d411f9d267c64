"""A Runner on a fresh spool folder; every run it started is stopped at the end."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cronhive.runner import Runner


@pytest.fixture
async def runner(tmp_path: Path) -> AsyncIterator[Runner]:
    r = Runner(tmp_path / "spool", default_grace=2.0, drain_timeout=0.5)
    yield r
    await r.stop_all(0)
