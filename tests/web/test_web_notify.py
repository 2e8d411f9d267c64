"""The job page shows a job's notify triggers and its notifications with their state."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from webkit import WebNode

from cronhive.engine.runs import triggered
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
