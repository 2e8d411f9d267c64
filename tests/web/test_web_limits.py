"""The job and run pages (and the JSON API) show a job's own limits and what its node
applied of them."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from webkit import WebNode

from cronhive.engine.executions import triggered
from cronhive.model import JobSpec, RunLimits, RunSpec


def test_job_and_run_pages_show_the_limits_and_what_applied(node: WebNode) -> None:
    now = datetime.now(UTC)
    spec = JobSpec(
        name="bounded",
        owner="user:lim",
        run=RunSpec(command=("true",), limits=RunLimits(memory_bytes=64 << 20, processes=32)),
    )
    job = node.call(node.store.create_job(spec, next_fire_at=None, created_by="lim", now=now))
    run = node.call(node.store.enqueue(triggered(job, now)))
    deadline = time.monotonic() + 30
    while not node.call(node.store.get_execution(run.id, visible_to=None)).state.terminal:
        assert time.monotonic() < deadline, "the run did not end"
        time.sleep(0.1)
    http = node.http(node.token("lim"))
    page = http.get(node.url(f"/jobs/{job.id}"), timeout=10)
    assert page.status_code == 200
    assert '<dd id="job-limits">memory 64M, processes 32 ' in page.text
    shown = http.get(node.url(f"/runs/{run.id}"), timeout=10).text
    assert '<dd id="run-limits">memory 64M, processes 32<br>' in shown
    assert "applied: rlimit: memory 64M" in shown or "applied: cgroup: memory 64M" in shown
    api = http.get(node.url(f"/api/v1/runs/{run.id}"), timeout=10).json()
    assert api["limits"] == {"memory_bytes": 64 << 20, "processes": 32}
    assert "processes 32" in api["limits_applied"]
    assert http.get(node.url(f"/api/v1/jobs/{job.id}"), timeout=10).json()["limits"] == {
        "memory_bytes": 64 << 20,
        "processes": 32,
    }
