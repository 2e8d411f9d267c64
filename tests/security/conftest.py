"""One default node shared by the security tests that only read from it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from securitykit import Node, running_node


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    with running_node(tmp_path_factory.mktemp("sec") / "data") as n:
        yield n
