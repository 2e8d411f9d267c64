"""The web JSON API enforces the same quotas as gRPC: a trigger past the owner's queued
runs limit answers 429 with the reason, and nothing is queued."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from webkit import WebNode

from cronhive.auth.policy import parse_policy


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebNode]:
    policy = parse_policy("[defaults]\nroles = ['scheduler']\n[limits]\nqueued_runs = 1\n")
    web = WebNode(tmp_path_factory.mktemp("web-quota"), policy=policy).start()
    yield web
    web.stop()


def test_a_trigger_past_the_queued_runs_limit_answers_429(limited: WebNode) -> None:
    # Tagged for nodes that do not exist: the run stays queued.
    job = limited.job("user:gus", "held", ["true"], tags=frozenset({"nowhere"}))
    with limited.http(limited.token("gus")) as gus:  # closed: no socket left behind
        first = gus.post(limited.url(f"/api/v1/jobs/{job.id}/trigger"))
        assert first.status_code == 200 and first.json()["state"] == "queued"
        second = gus.post(limited.url(f"/api/v1/jobs/{job.id}/trigger"))
        assert second.status_code == 429
        assert "limits.queued_runs = 1" in second.text
        runs = gus.get(limited.url(f"/api/v1/jobs/{job.id}/runs")).json()
        assert [r["id"] for r in runs["runs"]] == [first.json()["id"]]
