"""Chromium against two real nodes on one PostgreSQL database: a browser signed in
through node 1 keeps working on node 2 and after node 1 restarts (sessions live in the
database); signing out on one node ends the session on every node."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect
from webkit import WebNode, new_page, require_chromium, sign_in

require_chromium()

pytestmark = pytest.mark.postgres


def test_a_session_is_served_by_every_node_and_survives_a_restart(
    browser: Browser, pg_database: Callable[[str | None], str], tmp_path: Path
) -> None:
    url = pg_database(None)
    one = WebNode(tmp_path / "n1", db=url, name="n1").start()
    two = WebNode(tmp_path / "n2", db=url, name="n2").start()
    nodes = [one, two]
    try:
        token = one.token("sam")
        one.job("user:sam", "shared-job", ["true"], cron="0 4 * * *")
        page = new_page(browser)
        page.goto(one.url("/signin"))
        sign_in(page, one, token)

        # Cookies are per host, not per port: the same cookie reaches node 2.
        page.goto(two.url("/jobs"))
        expect(page).to_have_url(two.url("/jobs"))
        expect(page.locator("table.jobs")).to_contain_text("shared-job")
        expect(page.locator(".who")).to_have_text("sam")

        port = one.port
        one.stop()
        nodes.remove(one)
        one = WebNode(tmp_path / "n1", db=url, name="n1", port=port).start()
        nodes.append(one)
        page.goto(one.url("/jobs"))
        expect(page).to_have_url(one.url("/jobs"))
        expect(page.locator("table.jobs")).to_contain_text("shared-job")
        # A form on the restarted node: the CSRF token is the session's, from the database.
        page.goto(one.url("/jobs"))
        page.click("a:has-text('shared-job')")
        page.click("button:has-text('Pause')")
        expect(page.locator("h1")).to_contain_text("paused")

        page.goto(two.url("/jobs"))
        page.click("button:has-text('Sign out')")
        expect(page).to_have_url(two.url("/signin"))
        page.goto(one.url("/jobs"))
        expect(page).to_have_url(one.url("/signin"))  # ended on node 1 too, at once
    finally:
        for node in nodes:
            node.stop()


def test_revoking_the_token_ends_its_sessions_on_every_node(
    browser: Browser, pg_database: Callable[[str | None], str], tmp_path: Path
) -> None:
    url = pg_database(None)
    one = WebNode(tmp_path / "n1", db=url, name="n1").start()
    two = WebNode(tmp_path / "n2", db=url, name="n2").start()
    try:
        token = one.token("rae")
        page = new_page(browser)
        page.goto(two.url("/signin"))
        sign_in(page, two, token)
        (stored,) = one.call(one.store.list_tokens("rae"))
        one.call(one.store.revoke_token("rae", stored.id, now=datetime.now(UTC)))
        for node in (one, two):
            page.goto(node.url("/jobs"))
            expect(page).to_have_url(node.url("/signin"))
    finally:
        one.stop()
        two.stop()
