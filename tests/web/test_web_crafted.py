"""Regressions of the fuzz suite: crafted cursors and Last-Event-ID values that made the
JSON API and the tail answer 500 (or break the stream) now get a 400 naming the field;
and the node listing no longer tells one tenant how many runs another has."""

from __future__ import annotations

import base64
import json
import time

import pytest
from webkit import WebNode


def cursor(values: object) -> str:
    """A cursor as the server encodes them, around any JSON (not one it made)."""
    text = json.dumps(values)  # a lone surrogate stays escaped as \\ud800, valid JSON
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.fixture(scope="module")
def token(node: WebNode) -> str:
    return node.token("crafter")


@pytest.fixture(scope="module")
def job_id(node: WebNode) -> str:
    return str(node.job("user:crafter", "crafted", ["true"], cron="0 4 * * *").id)


NAIVE = cursor(["2020-01-01T00:00:00", "00000000-0000-0000-0000-000000000000"])
SURROGATE = cursor(["\ud800", "x"])
SURROGATE_RUN = cursor(["2020-01-01T00:00:00+00:00", "\ud800"])


@pytest.mark.parametrize("value", [NAIVE, SURROGATE, SURROGATE_RUN])
def test_bad_run_cursors_are_400_naming_before(node: WebNode, token: str, value: str) -> None:
    r = node.http(token).get(node.url("/api/v1/runs"), params={"before": value})
    assert r.status_code == 400, r.text
    assert r.json()["error"].startswith("before:"), r.text


@pytest.mark.parametrize("value", [NAIVE, SURROGATE, SURROGATE_RUN])
def test_bad_cursors_on_the_job_page_are_400(
    node: WebNode, token: str, job_id: str, value: str
) -> None:
    r = node.http(token).get(node.url(f"/jobs/{job_id}"), params={"before": value})
    assert r.status_code == 400, r.text
    assert "before" in r.text


@pytest.mark.parametrize("value", [SURROGATE, cursor(["user:crafter", "\udfff"]), NAIVE])
def test_bad_job_cursors_are_400_naming_after(node: WebNode, token: str, value: str) -> None:
    r = node.http(token).get(node.url("/api/v1/jobs"), params={"after": value})
    assert r.status_code in (200, 400), r.text  # NAIVE is two strings: a valid (empty) page
    if value != NAIVE:
        assert r.status_code == 400 and r.json()["error"].startswith("after:"), r.text


@pytest.mark.parametrize("last", ["--5", "1" * 26, "-2", "5x"])
def test_bad_last_event_ids_are_400(node: WebNode, token: str, job_id: str, last: str) -> None:
    run = node.http(token).post(node.url(f"/api/v1/jobs/{job_id}/trigger"))
    assert run.status_code in (200, 201), run.text
    run_id = run.json()["id"]
    r = node.http(token).get(
        node.url(f"/runs/{run_id}/tail"), headers={"Last-Event-ID": last}, timeout=10
    )
    assert r.status_code == 400, r.text
    assert "Last-Event-ID" in r.text


def test_node_listing_shows_only_the_callers_running_count(node: WebNode) -> None:
    owner, viewer = node.token("runner-owner"), node.token("viewer")
    job = node.job("user:runner-owner", "sleeper", ["sleep", "30"])
    run = node.http(owner).post(node.url(f"/api/v1/jobs/{job.id}/trigger")).json()
    try:
        deadline = time.monotonic() + 20
        while _running(node, owner) < 1:
            assert time.monotonic() < deadline, "the run never started"
            time.sleep(0.05)
        assert _running(node, viewer) == 0  # nodes are everybody's; their runs are not
    finally:
        node.http(owner).post(node.url(f"/api/v1/runs/{run['id']}/stop"))


def _running(node: WebNode, token: str) -> int:
    nodes = node.http(token).get(node.url("/api/v1/nodes")).json()["nodes"]
    return sum(int(n["running"]) for n in nodes)
