"""Chromium sets a job's notification triggers from its page (issue 15): the form posts
with the session's CSRF token through the service's job update; a target the node does
not know is refused and changes nothing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, expect
from webkit import WebNode, new_page, require_chromium, sign_in

from cronhive.notify import Targets, Webhook

require_chromium()


@pytest.fixture(scope="module")
def notify_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebNode]:
    hooks = {
        name: Webhook(name=name, url="http://127.0.0.1:9/", secret=b"s") for name in ("ops", "chat")
    }
    web = WebNode(tmp_path_factory.mktemp("notify-web"), targets=Targets(hooks)).start()
    yield web
    web.stop()


def test_set_a_jobs_notifications_from_its_page(notify_node: WebNode, browser: Browser) -> None:
    node = notify_node
    job = node.job("user:nia", "nia-report", ["true"], cron="0 7 * * *")
    page = new_page(browser)
    page.goto(node.url("/signin"))
    sign_in(page, node, node.token("nia"))

    page.goto(node.url(f"/jobs/{job.id}"))
    page.click("details.notify summary")
    page.fill("#notify-failure", "ops, chat")
    page.fill("#notify-recovery", "ops")
    page.click("button:has-text('Save notifications')")
    expect(page).to_have_url(node.url(f"/jobs/{job.id}"))
    expect(page.locator("dl.definition")).to_contain_text("failure=chat,ops")
    stored = node.call(node.store.get_job(job.id, visible_to=None))
    assert stored.spec.notify == {"failure": ("chat", "ops"), "recovery": ("ops",)}
    events = node.call(node.store.list_events(visible_to=None, limit=1000))
    assert any(e.kind == "job.updated" and e.job_id == job.id for e in events)

    page.click("details.notify summary")
    page.fill("#notify-failure", "nowhere")
    page.click("button:has-text('Save notifications')")
    expect(page.locator("body")).to_contain_text("unknown target 'nowhere'")
    again = node.call(node.store.get_job(job.id, visible_to=None))
    assert again.spec.notify == stored.spec.notify

    # The form's POST without the session's CSRF token is refused.
    forged = page.request.post(
        node.url(f"/jobs/{job.id}/notify"), form={"csrf": "wrong", "on_failure": ""}
    )
    assert forged.status == 403
    assert node.call(node.store.get_job(job.id, visible_to=None)).spec.notify == stored.spec.notify
    page.context.close()
