"""The job page shows a job's notify triggers and its notifications with their state."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from webkit import WebNode

from cronhive.engine.executions import triggered
from cronhive.model import JobSpec, RunSpec


def test_job_page_lists_triggers_and_notifications_to_their_owner_only(node: WebNode) -> None:
    now = datetime.now(UTC)
    spec = JobSpec(
        name="noisy",
        owner="user:notes",
        run=RunSpec(command=("false",)),
        notify={"failure": ("ops",), "recovery": ("ops", "chat")},
    )
    job = node.call(node.store.create_job(spec, next_fire_at=None, created_by="notes", now=now))
    run = node.call(node.store.enqueue(triggered(job, now)))
    deadline = time.monotonic() + 30
    while not node.call(node.store.list_deliveries(visible_to=None, job_id=job.id)):
        assert time.monotonic() < deadline, "the failure wrote no notification"
        time.sleep(0.1)
    page = node.http(node.token("notes")).get(node.url(f"/jobs/{job.id}"), timeout=10)
    assert page.status_code == 200
    text = page.text
    assert "<code>failure=ops</code>" in text and "<code>recovery=chat,ops</code>" in text
    assert "<h2>Notifications</h2>" in text
    # No node here has targets configured: the failure waits, pending, for one that has.
    assert '<td class="pending">pending</td>' in text and f"/runs/{run.id}" in text
    other = node.http(node.token("someone-else")).get(node.url(f"/jobs/{job.id}"), timeout=10)
    assert other.status_code == 404


def test_notifications_page_lists_and_retries_a_failed_one(node: WebNode) -> None:
    now = datetime.now(UTC)
    spec = JobSpec(
        name="pager",
        owner="user:paged",
        run=RunSpec(command=("false",)),
        notify={"failure": ("pager-ops",)},
    )
    job = node.call(node.store.create_job(spec, next_fire_at=None, created_by="paged", now=now))
    node.call(node.store.enqueue(triggered(job, now)))
    deadline = time.monotonic() + 30
    while not node.call(node.store.list_deliveries(visible_to=None, job_id=job.id)):
        assert time.monotonic() < deadline, "the failure wrote no notification"
        time.sleep(0.1)
    # The node here has no targets: settle the delivery as a node that gave up would.
    [me] = [n for n in node.call(node.store.list_nodes(now=datetime.now(UTC))) if n.alive(now)]
    [claimed] = node.call(
        node.store.claim_deliveries(
            me.id, targets=("pager-ops",), limit=1, claim_for=60, now=datetime.now(UTC)
        )
    )
    assert node.call(
        node.store.settle_delivery(
            claimed.id, node_id=me.id, now=datetime.now(UTC), error="HTTP 400 from target pager-ops"
        )
    )
    http = node.http(node.token("paged"))
    page = http.get(node.url("/notifications"), timeout=10)
    assert page.status_code == 200
    assert "HTTP 400 from target pager-ops" in page.text
    assert f'action="/notifications/{claimed.id}/retry"' in page.text
    stranger = node.http(node.token("stranger"))
    assert str(claimed.id) not in stranger.get(node.url("/notifications"), timeout=10).text
    assert (
        stranger.post(node.url(f"/notifications/{claimed.id}/retry"), timeout=10).status_code == 404
    )
    done = http.post(
        node.url(f"/notifications/{claimed.id}/retry"), timeout=10, allow_redirects=False
    )
    assert done.status_code == 303 and done.headers["location"] == "/notifications"
    again = node.call(node.store.get_delivery(claimed.id, visible_to=None))
    assert (again.state.value, again.attempts) == ("pending", 0)
