"""Chromium (Debian's, driven by Playwright) against a real node: sign in with a token,
see a job, watch a running run's log grow live, stop it; another user gets 404s.

Screenshots of the main pages land in artifacts/screenshots/. Without /usr/bin/chromium
the test is skipped locally and fails under CI (where scripts/test installs it).
"""

from __future__ import annotations

import re
import time

from playwright.sync_api import Browser, Page, expect
from webkit import SHOTS, WebNode, new_page, require_chromium, sign_in

require_chromium()


def _sign_in(page: Page, node: WebNode, token: str) -> None:
    page.goto(node.url("/jobs"))
    expect(page).to_have_url(node.url("/signin"))
    sign_in(page, node, token)


def _finished_runs(node: WebNode, job_id: str, token: str, count: int) -> None:
    """A few quick runs so the job page has a history and a chart."""
    http = node.http(token)
    for _ in range(count):
        run = http.post(node.url(f"/api/v1/jobs/{job_id}/trigger")).json()
        deadline = time.monotonic() + 20
        while http.get(node.url(f"/api/v1/runs/{run['id']}")).json()["state"] in (
            "queued",
            "running",
        ):
            assert time.monotonic() < deadline
            time.sleep(0.05)


def test_sign_in_follow_a_live_log_stop_it_and_hide_it_from_others(
    node: WebNode, browser: Browser
) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    alice = node.token("alice")
    node.job(
        "user:alice",
        "nightly-backup",
        ["sh", "-c", "echo backing up; sleep 0.3"],
        cron="30 2 * * *",
    )
    quick = node.job(
        "user:alice",
        "hourly-report",
        ["sh", "-c", "echo report; exit $(($$ % 3 == 0))"],
        cron="0 * * * *",
    )
    ticker = node.job(
        "user:alice",
        "ticker",
        ["sh", "-c", "i=0; while [ $i -lt 600 ]; do i=$((i+1)); echo tick $i; sleep 0.1; done"],
    )
    _finished_runs(node, str(quick.id), alice, 6)

    page = new_page(browser)
    _sign_in(page, node, alice)
    expect(page.locator("table.jobs")).to_contain_text("ticker")
    expect(page.locator("table.jobs")).to_contain_text("at 02:30 every day")
    page.screenshot(path=str(SHOTS / "jobs.png"), full_page=True)

    page.click("a:has-text('hourly-report')")
    expect(page.locator("svg.chart rect")).to_have_count(6)
    page.screenshot(path=str(SHOTS / "job.png"), full_page=True)

    page.goto(node.url(f"/jobs/{ticker.id}"))
    page.click("button:has-text('Run now')")
    expect(page).to_have_url(re.compile(r".*/runs/[0-9a-f-]{36}$"))
    run_url = page.url
    log = page.locator("#log")
    expect(log).to_contain_text("tick 3")
    seen = log.inner_text().count("tick")
    # No reload: the same page receives new output as the run writes it.
    expect(log).to_contain_text(f"tick {seen + 5}")
    expect(page.locator("#run-state")).to_contain_text("running")
    page.screenshot(path=str(SHOTS / "run.png"), full_page=True)

    page.click("button:has-text('Stop')")
    expect(page.locator("#run-state")).to_contain_text("stopped")
    expect(page.locator("#tail-status")).to_have_text("ended")
    assert "tick 600" not in log.inner_text()

    page.goto(node.url("/nodes"))
    expect(page.locator("table.nodes")).to_contain_text("web1")
    expect(page.locator("table.nodes")).to_contain_text("up")
    page.screenshot(path=str(SHOTS / "nodes.png"), full_page=True)

    page.click("button:has-text('Sign out')")
    expect(page).to_have_url(node.url("/signin"))

    intruder = new_page(browser)
    _sign_in(intruder, node, node.token("mallory"))
    expect(intruder.locator("main")).not_to_contain_text("ticker")
    for url in (node.url(f"/jobs/{ticker.id}"), run_url):
        response = intruder.goto(url)
        assert response is not None and response.status == 404
        expect(intruder.locator("h1")).to_have_text("Not found")
        expect(intruder.locator("main")).not_to_contain_text("ticker")
    response = intruder.goto(run_url + "/tail")
    assert response is not None and response.status == 404
