"""For each operation both front ends serve, the gRPC answer and the web's JSON answer
for the same object carry the same fields and values (api.shapes), and the OpenAPI
document matches the routes and the shapes the web serves."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine, Iterator
from datetime import UTC, datetime
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
import requests
from webkit import WebNode

from cronhive.api._generated.cronhive.v1 import cronhive_pb2 as pb
from cronhive.api.client import Client, connect
from cronhive.api.shapes import SHAPED, shape
from cronhive.auth.certs import issue_client_files
from cronhive.model import JobSpec, RunSpec
from cronhive.schedule import parse_schedule
from cronhive.web import _jsonapi, _pages
from cronhive.web._openapi import openapi_document

USER = "shaper"


@pytest.fixture(scope="module")
def grpc(node: WebNode) -> Iterator[Callable[[Callable[[Client], Coroutine[Any, Any, Any]]], Any]]:
    """Runs `call(client)` with a gRPC client of USER, on a loop of the test's own."""
    issue_client_files(node.certs.dir, user=USER, days=5)
    with asyncio.Runner() as runner:
        server = f"127.0.0.1:{node.api_port}"
        client = runner.run(connect(server, node.certs.dir, cert_name=USER))
        yield lambda call: runner.run(call(client))
        runner.run(client.aclose())


def _ended(http: requests.Session, node: WebNode, run_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while (run := http.get(node.url(f"/api/v1/runs/{run_id}")).json())["state"] in (
        "queued",
        "running",
    ):
        assert time.monotonic() < deadline, run
        time.sleep(0.05)
    return dict(run)


def test_grpc_and_web_answer_each_object_alike(node: WebNode, grpc: Any) -> None:
    http = node.http(node.token(USER))
    now = datetime.now(UTC)
    at_five = parse_schedule("cron", "0 5 * * *", timezone="Europe/Berlin")
    at_five = parse_schedule("cron", "0 5 * * *", timezone="Europe/Berlin")
    spec = JobSpec(
        name="shape-job",
        owner=f"user:{USER}",
        run=RunSpec(command=("sh", "-c", "echo out; exit 3"), env={"A": "1"}),
        schedule=at_five,
        notify={"failure": ("ops",)},
        description="shaped",
    )
    first = at_five.next_after(now)
    job = node.call(node.store.create_job(spec, next_fire_at=first, created_by=USER, now=now))
    jid = str(job.id)

    def web(path: str, method: str = "GET", **kw: Any) -> Any:
        answer = http.request(method, node.url(f"/api/v1{path}"), **kw)
        assert answer.status_code == 200, answer.text
        return answer.json()

    # Jobs: get, list; pause through the web, resume through gRPC, each read by the other.
    got = grpc(lambda c: c.jobs.Get(pb.GetJobRequest(id=jid)))
    assert shape(got) == web(f"/jobs/{jid}")
    listed = grpc(lambda c: c.jobs.List(pb.ListJobsRequest()))
    assert [shape(j) for j in listed.jobs] == web("/jobs")["jobs"]
    paused = web(f"/jobs/{jid}/pause", "POST")
    assert shape(grpc(lambda c: c.jobs.Get(pb.GetJobRequest(id=jid)))) == paused
    resumed = grpc(lambda c: c.jobs.Resume(pb.ResumeJobRequest(id=jid)))
    assert shape(resumed) == web(f"/jobs/{jid}")
    assert shape(resumed)["schedule"]["description"] == "at 05:00 every day (Europe/Berlin)"

    # Runs: trigger through each, status, the job's list and all runs, stop.
    by_web = web(f"/jobs/{jid}/trigger", "POST", json={"env": {"B": "2"}})
    by_grpc = shape(grpc(lambda c: c.jobs.Trigger(pb.TriggerJobRequest(id=jid))))
    for run in (by_web, by_grpc):
        ended = _ended(http, node, run["id"])
        status = grpc(lambda c, rid=run["id"]: c.runs.GetStatus(pb.GetStatusRequest(id=rid)))
        assert shape(status) == ended and ended["exit_code"] == 3
    history = grpc(lambda c: c.runs.ListExecutions(pb.ListExecutionsRequest(job_id=jid)))
    assert [shape(e) for e in history.executions] == web(f"/jobs/{jid}/runs")["runs"]
    everything = grpc(lambda c: c.runs.ListExecutions(pb.ListExecutionsRequest()))
    assert [shape(e) for e in everything.executions] == web("/runs")["runs"]
    long = grpc(lambda c: c.runs.Start(pb.StartRunRequest(command=["sleep", "30"])))
    stopped = web(f"/runs/{long.id}/stop", "POST")
    assert set(stopped) == set(shape(long))
    ended = _ended(http, node, long.id)
    assert shape(grpc(lambda c: c.runs.GetStatus(pb.GetStatusRequest(id=long.id)))) == ended

    # Nodes (a heartbeat may land between the two reads: compare all else, then retry).
    for _ in range(5):
        nodes = [shape(n) for n in grpc(lambda c: c.nodes.List(pb.ListNodesRequest())).nodes]
        if nodes == web("/nodes")["nodes"]:
            break
    else:
        pytest.fail("the nodes differ between gRPC and the web")

    # Events of the job, and its notifications (the failures wrote them, pending).
    async def events(c: Client) -> list[pb.Event]:
        request = pb.WatchEventsRequest(after_id=0, job_id=jid, backlog_only=True)
        async with c.events.Watch.open() as stream:
            await stream.send_message(request, end=True)
            return [e async for e in stream]

    watched = [shape(e) for e in grpc(events)]
    assert len(watched) >= 5 and watched == web(f"/events?job_id={jid}")["events"]
    deadline = time.monotonic() + 30
    while not (notes := web(f"/notifications?job_id={jid}")["notifications"]):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    listed_notes = grpc(
        lambda c: c.notifications.ListNotifications(pb.ListNotificationsRequest(job_id=jid))
    )
    assert [shape(n) for n in listed_notes.notifications] == notes
    assert notes[0]["payload"]["job"]["name"] == "shape-job"


def test_the_openapi_document_matches_the_routes_and_shapes(node: WebNode) -> None:
    doc = openapi_document()
    # The routes create_app mounts under /api/ (pages and JSON API alike).
    served = {
        (route.path, method.lower())
        for route in [*_pages.routes(), *_jsonapi.routes()]
        for method in (route.methods or ())
        if route.path.startswith("/api/")
        and method != "HEAD"
        and route.path != "/api/v1/openapi.json"
    }
    documented = {(path, method) for path, ops in doc["paths"].items() for method in ops}
    assert served == documented
    schemas = doc["components"]["schemas"]
    for name, descriptor in SHAPED.items():
        assert set(schemas[name]["properties"]) == {
            "payload" if f.name == "payload_json" else f.name for f in descriptor.fields
        }, name
    # What the web serves validates against the document's schema of it.
    http = node.http(node.token(USER))
    job = node.job(f"user:{USER}", "schema-job", ["true"], cron="0 6 * * *")
    run = http.post(node.url(f"/api/v1/jobs/{job.id}/trigger")).json()
    _ended(http, node, run["id"])
    served_objects = {
        "Job": http.get(node.url(f"/api/v1/jobs/{job.id}")).json(),
        "Run": http.get(node.url(f"/api/v1/runs/{run['id']}")).json(),
        "Node": http.get(node.url("/api/v1/nodes")).json()["nodes"][0],
        "Event": http.get(node.url(f"/api/v1/events?job_id={job.id}")).json()["events"][0],
        "Output": http.get(node.url(f"/api/v1/runs/{run['id']}/output")).json(),
    }
    for name, value in served_objects.items():
        schema = {"$ref": f"#/components/schemas/{name}", "components": doc["components"]}
        jsonschema.validate(value, schema, cls=jsonschema.Draft202012Validator)
        assert set(value) == set(schemas[name]["properties"]), name
