"""Engine fixtures: a store on each backend (the same engine must hold on both)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from cronhive.store import Store, open_store


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'cronhive.db'}"
    else:
        factory: Callable[[str | None], str] = request.getfixturevalue("pg_database")
        url = factory(None)
    s = await open_store(url)
    yield s
    await s.close()
