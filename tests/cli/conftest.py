"""One real node (SQLite) shared by the CLI test modules that can share it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from clikit import Cli, running_node


@pytest.fixture(scope="session")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    with running_node(tmp_path_factory.mktemp("cli") / "data") as c:
        yield c
