"""A SQL job in the web UI and its JSON API: shown with its database and role (escaped),
and a run on a node without that database is refused and recorded with the reason."""

from __future__ import annotations

import time
from dataclasses import replace

from webkit import WebNode

from cronhive.model import RunSpec, SqlSpec


def test_a_sql_job_shows_and_a_node_without_its_database_refuses_the_run(
    node: WebNode,
) -> None:
    plain = node.job("user:hal", "hal-sql", ["true"])
    sql = SqlSpec(statement="SELECT '<b>' AS x", database="wh", role="etl")
    spec = replace(plain.spec, run=RunSpec(command=(), sql=sql))
    job = node.call(
        node.store.update_job(
            plain.id, spec, next_fire_at=None, visible_to=None, now=plain.created_at
        )
    )
    hal = node.http(node.token("hal"))
    got = hal.get(node.url(f"/api/v1/jobs/{job.id}")).json()
    assert got["command"] == []
    assert got["sql"] == {
        "statement": "SELECT '<b>' AS x",
        "database": "wh",
        "role": "etl",
        "autocommit": False,
    }
    page = hal.get(node.url(f"/jobs/{job.id}")).text
    assert "SELECT &#39;&lt;b&gt;&#39; AS x" in page and "as role etl" in page
    run = hal.post(node.url(f"/api/v1/jobs/{job.id}/trigger")).json()
    deadline = time.monotonic() + 20
    while (done := hal.get(node.url(f"/api/v1/runs/{run['id']}")).json())["state"] in (
        "queued",
        "running",
    ):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert (done["state"], done["exit_code"]) == ("failed", 3)
    assert done["reason"] == "refused: database 'wh' is not configured on this node"
    assert done["sql"]["role"] == "etl"
    out = hal.get(node.url(f"/api/v1/runs/{run['id']}/output")).json()
    assert [(c["stream"], c["text"]) for c in out["chunks"]] == [
        ("stderr", "cronhive: refused: database 'wh' is not configured on this node\n")
    ]
