"""Chromium against a real node: the Runs page lists an ad-hoc run and filters by state,
job and since, with links to each run."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

from playwright.sync_api import Browser, Page, expect
from webkit import SHOTS, WebNode, new_page, require_chromium, sign_in

from cronhive.engine import executions as new
from cronhive.model import Execution, RunSpec

require_chromium()


def _signed_in(browser: Browser, node: WebNode, token: str) -> Page:
    page = new_page(browser)
    page.goto(node.url("/signin"))
    sign_in(page, node, token)
    return page


def _adhoc(node: WebNode, owner: str, command: list[str]) -> Execution:
    """An ad-hoc run, queued as `cronhive run` queues one, waited for to its end."""
    spec = RunSpec(command=tuple(command))
    queued = node.call(node.store.enqueue(new.adhoc(owner, spec, datetime.now(UTC))))
    deadline = time.monotonic() + 20
    while True:
        run = node.call(node.store.get_execution(queued.id, visible_to=None))
        if run.state.terminal:
            return run
        assert time.monotonic() < deadline, run
        time.sleep(0.05)


def test_runs_page_shows_an_adhoc_run_and_filters(node: WebNode, browser: Browser) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    token = node.token("rita")
    good = _adhoc(node, "user:rita", ["true"])
    bad = _adhoc(node, "user:rita", ["false"])
    hidden = _adhoc(node, "user:someone-else", ["true"])
    job = node.job("user:rita", "runs-page-job", ["true"])

    page = _signed_in(browser, node, token)
    page.click("nav a:has-text('Runs')")
    expect(page).to_have_url(node.url("/runs"))
    table = page.locator("table.runs")
    expect(table.locator(f"a[href='/runs/{good.id}']")).to_have_count(1)
    expect(table.locator(f"a[href='/runs/{bad.id}']")).to_have_count(1)
    expect(table.locator(f"a[href='/runs/{hidden.id}']")).to_have_count(0)
    expect(table).to_contain_text("ad hoc")
    page.screenshot(path=str(SHOTS / "runs.png"), full_page=True)

    page.select_option("#filter-state", "failed")
    page.click("button:has-text('Filter')")
    expect(page).to_have_url(re.compile(r".*/runs\?.*state=failed"))
    expect(table.locator(f"a[href='/runs/{bad.id}']")).to_have_count(1)
    expect(table.locator(f"a[href='/runs/{good.id}']")).to_have_count(0)

    page.goto(node.url("/runs?since=1h"))
    expect(table.locator(f"a[href='/runs/{good.id}']")).to_have_count(1)
    page.goto(node.url(f"/runs?job={job.id}"))
    expect(page.locator("main")).to_contain_text("No runs match.")

    page.goto(node.url("/runs"))
    page.click(f"a[href='/runs/{good.id}']")
    expect(page).to_have_url(node.url(f"/runs/{good.id}"))
    expect(page.locator("#run-state")).to_contain_text("succeeded")

    response = page.goto(node.url("/runs?state=bogus"))
    assert response is not None and response.status == 400


def test_a_queued_run_no_node_can_take_says_why(node: WebNode, browser: Browser) -> None:
    token = node.token("tess")
    spec = RunSpec(command=("true",), target_tags=frozenset({"gpu"}))
    queued = node.call(node.store.enqueue(new.adhoc("user:tess", spec, datetime.now(UTC))))
    page = _signed_in(browser, node, token)
    page.goto(node.url(f"/runs/{queued.id}"))
    expect(page.locator("#run-state")).to_contain_text("queued")
    expect(page.locator("#run-waiting")).to_contain_text("no live node carries the tags gpu")
    page.click("button:has-text('Stop')")
    expect(page.locator("#run-state")).to_contain_text("stopped")


COLOURED = (
    r"printf '\033[31mred\033[0m plain \033[1;32mbold green\033[0m '; sleep 0.4; "
    r"printf '\033['; sleep 0.4; printf '34mblue\033[39m \033[2K\033[38;5;208morange\033[0m '; "
    r"printf '\033[38;2;1;2;3mrgb\033[0m \033]0;title\007done\n'"
)


def test_a_colour_coded_log_renders_without_escape_codes(node: WebNode, browser: Browser) -> None:
    token = node.token("cole")
    job = node.job("user:cole", "colours", ["sh", "-c", COLOURED])
    page = _signed_in(browser, node, token)
    page.goto(node.url(f"/jobs/{job.id}"))
    page.click("button:has-text('Run now')")
    expect(page.locator("#tail-status")).to_have_text("ended")
    log = page.locator("#log")
    # The escape sequence split across two chunks ("\033[" then "34m") is rendered too.
    expect(log).to_have_text("red plain bold green blue orange rgb done\n")
    text = log.inner_text()
    assert "\x1b" not in text and "[31m" not in text and "34m" not in text
    red = log.locator("span.ansi-fg-1")
    expect(red).to_have_text("red")
    assert red.evaluate("e => getComputedStyle(e).color") == "rgb(248, 113, 113)"
    bold = log.locator("span.ansi-fg-2.ansi-bold")
    expect(bold).to_have_text("bold green")
    expect(log.locator("span.ansi-fg-4")).to_have_text("blue")
    orange = log.locator("span", has_text="orange")
    assert orange.evaluate("e => getComputedStyle(e).color") == "rgb(255, 135, 0)"
    rgb = log.locator("span", has_text="rgb")
    assert rgb.evaluate("e => getComputedStyle(e).color") == "rgb(1, 2, 3)"
    page.screenshot(path=str(SHOTS / "run-colours.png"), full_page=True)


def test_run_now_with_parameters(node: WebNode, browser: Browser) -> None:
    token = node.token("pat")
    job = node.job("user:pat", "with-params", ["sh", "-c", 'echo "$WHO:" "$@"', "sh"])
    page = _signed_in(browser, node, token)
    page.goto(node.url(f"/jobs/{job.id}"))
    page.click("summary:has-text('Run with parameters')")
    page.fill("#param-env", "WHO=web user")
    page.fill("#param-args", "one 'two words'")
    page.click("button:has-text('Run with these')")
    expect(page).to_have_url(re.compile(r".*/runs/[0-9a-f-]{36}$"))
    expect(page.locator("#log")).to_have_text("web user: one two words\n")
    expect(page.locator("#run-env")).to_contain_text("WHO=web user")
    expect(page.locator("main code").first).to_contain_text("one 'two words'")
