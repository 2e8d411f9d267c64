"""One web node per test module (starting one costs about a second); one browser per
browser test module (those call webkit.require_chromium first)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser
from webkit import WebNode, chromium


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebNode]:
    web = WebNode(tmp_path_factory.mktemp("web")).start()
    yield web
    web.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as b:
        yield b
