"""The authorization matrix: owner, group member, another user and an admin against every
RPC, for a job owned by user:alice and one owned by group:data (and their runs).

Someone who may not see a thing gets NOT_FOUND with the same message as for an id that
does not exist, on every RPC, streaming ones included.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from apikit import Cluster, create, wait_terminal
from google.protobuf.field_mask_pb2 import FieldMask
from grpclib.const import Status
from grpclib.exceptions import GRPCError

from cronhive.api._generated.cronhive.v1 import cronhive_pb2 as pb
from cronhive.api.client import Client

OWNERS = ("user:alice", "group:data")
# Who may see what each owner owns.
ALLOWED = {
    "user:alice": {"alice", "admin"},
    "group:data": {"alice", "bob", "admin"},
}
USERS = ("alice", "bob", "carol", "admin")


async def _first_event(client: Client, **fields: Any) -> pb.Event | None:
    async with client.events.Watch.open() as call:
        await call.send_message(pb.WatchEventsRequest(**fields), end=True)
        event: pb.Event | None = await asyncio.wait_for(call.recv_message(), 10)
        await call.cancel()  # a watch never ends by itself
        return event


async def _stream(client: Client, execution_id: str) -> list[pb.OutputChunk]:
    chunks: list[pb.OutputChunk] = await client.runs.StreamOutput(
        pb.StreamOutputRequest(id=execution_id, follow=True)
    )
    return chunks


JobCall = Callable[[Client, str], Awaitable[Any]]
JOB_CALLS: dict[str, JobCall] = {
    "Get": lambda c, i: c.jobs.Get(pb.GetJobRequest(id=i)),
    "Update": lambda c, i: c.jobs.Update(
        pb.UpdateJobRequest(
            job=pb.Job(id=i, description="changed"), update_mask=FieldMask(paths=["description"])
        )
    ),
    "Pause": lambda c, i: c.jobs.Pause(pb.PauseJobRequest(id=i)),
    "Resume": lambda c, i: c.jobs.Resume(pb.ResumeJobRequest(id=i)),
    "Trigger": lambda c, i: c.jobs.Trigger(pb.TriggerJobRequest(id=i)),
    "ListExecutions": lambda c, i: c.runs.ListExecutions(pb.ListExecutionsRequest(job_id=i)),
    "Watch": lambda c, i: _first_event(c, job_id=i, after_id=0),
    "Delete": lambda c, i: c.jobs.Delete(pb.DeleteJobRequest(id=i)),
}
RUN_CALLS: dict[str, JobCall] = {
    "GetStatus": lambda c, i: c.runs.GetStatus(pb.GetStatusRequest(id=i)),
    "StreamOutput": lambda c, i: _stream(c, i),
    "Stop": lambda c, i: c.runs.Stop(pb.StopRunRequest(id=i)),
}


async def _outcome(call: Awaitable[Any]) -> tuple[Status | None, str]:
    try:
        await call
    except GRPCError as exc:
        return exc.status, exc.message or ""
    return None, ""


async def _check(
    calls: dict[str, JobCall], thing: Callable[[], Awaitable[str]], cluster: Cluster, owner: str
) -> None:
    for name, call in calls.items():
        for user in USERS:
            target = await thing()  # fresh per call: Delete and Stop change it
            status, message = await _outcome(call(cluster[user], target))
            if user in ALLOWED[owner]:
                assert status is None, (name, user, owner, status, message)
            else:
                assert status is Status.NOT_FOUND, (name, user, owner, status)
                # Indistinguishable from an id that does not exist.
                missing = str(uuid.uuid4())
                status2, message2 = await _outcome(call(cluster[user], missing))
                assert status2 is Status.NOT_FOUND
                assert message.replace(target, "ID") == message2.replace(missing, "ID"), name


@pytest.mark.parametrize("owner", OWNERS)
async def test_every_job_rpc(cluster: Cluster, owner: str) -> None:
    admin = cluster["admin"]

    async def new_job() -> str:
        return (await create(admin, f"j-{uuid.uuid4().hex[:8]}", owner=owner)).id

    await _check(JOB_CALLS, new_job, cluster, owner)


@pytest.mark.parametrize("owner", OWNERS)
async def test_every_run_rpc(cluster: Cluster, owner: str) -> None:
    admin = cluster["admin"]
    done = await admin.runs.Start(pb.StartRunRequest(command=["echo hi"], shell=True, owner=owner))
    await wait_terminal(admin, done.id)

    async def finished_run() -> str:
        return str(done.id)

    await _check(RUN_CALLS, finished_run, cluster, owner)


async def test_listings_show_only_what_each_may_see(cluster: Cluster) -> None:
    admin = cluster["admin"]
    for owner in (*OWNERS, "user:carol"):
        await create(admin, "job", owner=owner)
        e = await admin.runs.Start(pb.StartRunRequest(command=["true"], owner=owner))
        await wait_terminal(admin, e.id)
    expected = {
        "alice": {"user:alice", "group:data"},
        "bob": {"group:data"},
        "carol": {"user:carol"},
        "admin": {"user:alice", "group:data", "user:carol"},
    }
    for user, owners in expected.items():
        jobs = (await cluster[user].jobs.List(pb.ListJobsRequest())).jobs
        assert {j.owner for j in jobs} == owners, user
        runs = (await cluster[user].runs.ListExecutions(pb.ListExecutionsRequest())).executions
        assert {e.owner for e in runs} == owners, user
        # A filter on an owner one may not see is an empty list, not an error.
        other = (await cluster[user].jobs.List(pb.ListJobsRequest(owner="user:nobody"))).jobs
        assert not other
        assert (await cluster[user].nodes.List(pb.ListNodesRequest())).nodes[0].name == "n1"


async def test_creating_for_others_is_refused(cluster: Cluster) -> None:
    for user, owner in (("carol", "group:data"), ("bob", "user:alice"), ("carol", "user:alice")):
        client = cluster[user]
        with pytest.raises(GRPCError) as err:
            await create(client, "x", owner=owner)
        assert err.value.status is Status.PERMISSION_DENIED
        with pytest.raises(GRPCError) as err:
            await client.runs.Start(pb.StartRunRequest(command=["true"], owner=owner))
        assert err.value.status is Status.PERMISSION_DENIED
    assert not (await cluster["admin"].jobs.List(pb.ListJobsRequest())).jobs
    assert not (await cluster["admin"].runs.ListExecutions(pb.ListExecutionsRequest())).executions


async def test_watch_never_shows_carol_what_is_alices(cluster: Cluster) -> None:
    alice, carol = cluster["alice"], cluster["carol"]
    async with carol.events.Watch.open() as live:
        await live.send_message(pb.WatchEventsRequest(after_id=0), end=True)
        a = await create(alice, "secret")
        await alice.jobs.Trigger(pb.TriggerJobRequest(id=a.id))
        await create(alice, "shared", owner="group:data")
        mine = await create(carol, "mine")
        event = await asyncio.wait_for(live.recv_message(), 10)
        assert event is not None
        assert (event.kind, event.job_id, event.owner) == ("job.created", mine.id, "user:carol")
        await live.cancel()
    # From the beginning, too: only carol's own events.
    async with carol.events.Watch.open() as replay:
        await replay.send_message(pb.WatchEventsRequest(after_id=0), end=True)
        first = await asyncio.wait_for(replay.recv_message(), 10)
        assert first is not None and first.owner == "user:carol"
        await replay.cancel()
    # Alice sees hers and her group's, bob only the group's.
    seen = await _first_event(cluster["bob"], after_id=0)
    assert seen is not None and seen.owner == "group:data"


async def test_node_listing_counts_only_the_callers_runs(cluster: Cluster) -> None:
    alice = cluster["alice"]
    started = [
        await alice.runs.Start(pb.StartRunRequest(command=["sleep", "30"])) for _ in range(3)
    ]
    shared = await alice.runs.Start(pb.StartRunRequest(command=["sleep", "30"], owner="group:data"))

    async def counts() -> dict[str, int]:
        out = {}
        for user in ("alice", "bob", "carol", "admin"):
            nodes = (await cluster[user].nodes.List(pb.ListNodesRequest())).nodes
            out[user] = sum(n.running for n in nodes)
        return out

    try:
        async with asyncio.timeout(20):
            while (await counts())["admin"] < 4:
                await asyncio.sleep(0.05)
        # bob sees the group's run, not alice's own; carol sees none of the four
        assert await counts() == {"alice": 4, "bob": 1, "carol": 0, "admin": 4}
    finally:
        for e in (*started, shared):
            await cluster["admin"].runs.Stop(pb.StopRunRequest(id=e.id))
