"""One web node per test module (starting one costs about a second)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from webkit import WebNode


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebNode]:
    web = WebNode(tmp_path_factory.mktemp("web")).start()
    yield web
    web.stop()
