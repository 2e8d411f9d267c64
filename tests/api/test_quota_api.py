"""Per-owner quotas through the gRPC API: jobs, queued runs and the shortest interval."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from apikit import Cluster, create, running_cluster
from google.protobuf.field_mask_pb2 import FieldMask
from grpclib.const import Status
from grpclib.exceptions import GRPCError

from cronhive.api._generated.cronhive.v1 import cronhive_pb2 as pb
from cronhive.auth.policy import parse_policy

POLICY = """
[defaults]
roles = ["scheduler"]

[limits]
queued_runs = 2
jobs = 2
shortest_interval = "5m"

[users.admin]
roles = ["admin"]

[groups.data.limits]
jobs = 1
"""
EVERY_MINUTE = pb.Schedule(kind="cron", expression="* * * * *")
EVERY_5_MINUTES = pb.Schedule(kind="cron", expression="*/5 * * * *")


@pytest.fixture
async def limited(tmp_path: Path) -> AsyncIterator[Cluster]:
    # work=False: nothing is claimed, so every run stays queued.
    async with running_cluster(tmp_path, policy=parse_policy(POLICY), work=False) as c:
        yield c


async def refused(call: object) -> GRPCError:
    with pytest.raises(GRPCError) as info:
        await call  # type: ignore[misc]
    return info.value


async def test_jobs_per_owner_and_group_jobs_count_for_the_group(limited: Cluster) -> None:
    alice, bob, admin = limited["alice"], limited["bob"], limited["admin"]
    await create(alice, "one")
    await create(alice, "two")
    err = await refused(create(alice, "three"))
    assert err.status is Status.RESOURCE_EXHAUSTED
    assert (
        err.message
        == "user:alice has 2 jobs, the most it may have (limits.jobs = 2); delete one first"
    )
    # bob's own count is his; group:data (alice and bob) has its own limit of 1.
    await create(bob, "mine")
    await create(bob, "shared", owner="group:data")
    err = await refused(create(alice, "shared-too", owner="group:data"))
    assert err.status is Status.RESOURCE_EXHAUSTED and "group:data has 1 jobs" in (
        err.message or ""
    )
    # Moving a job to an owner at its limit is refused too; admins are exempt.
    mine = (await bob.jobs.List(pb.ListJobsRequest(name_prefix="mine"))).jobs[0]
    move = bob.jobs.Update(
        pb.UpdateJobRequest(
            job=pb.Job(id=mine.id, owner="group:data"), update_mask=FieldMask(paths=["owner"])
        )
    )
    assert (await refused(move)).status is Status.RESOURCE_EXHAUSTED
    for i in range(4):
        await create(admin, f"admin-{i}")
    names = {j.name for j in (await admin.jobs.List(pb.ListJobsRequest())).jobs}
    assert "three" not in names and "shared-too" not in names


async def test_queued_runs_per_owner_on_start_and_trigger(limited: Cluster) -> None:
    alice, bob = limited["alice"], limited["bob"]
    job = await create(alice, "j")
    await alice.runs.Start(pb.StartRunRequest(command=["true"]))
    await alice.jobs.Trigger(pb.TriggerJobRequest(id=job.id))
    err = await refused(alice.runs.Start(pb.StartRunRequest(command=["true"])))
    assert err.status is Status.RESOURCE_EXHAUSTED
    assert err.message == (
        "user:alice has 2 runs queued, the most it may have (limits.queued_runs = 2); "
        "wait for some to start or stop them"
    )
    assert (await refused(alice.jobs.Trigger(pb.TriggerJobRequest(id=job.id)))).status is (
        Status.RESOURCE_EXHAUSTED
    )
    await bob.runs.Start(pb.StartRunRequest(command=["true"]))  # bob is not held back
    # A stopped run frees its place.
    listed = await alice.runs.ListExecutions(pb.ListExecutionsRequest())
    await alice.runs.Stop(pb.StopRunRequest(id=listed.executions[0].id))
    await alice.runs.Start(pb.StartRunRequest(command=["true"]))
    queued = await limited.store.usage("user:alice")
    assert queued.queued == 2


async def test_a_schedule_more_often_than_the_shortest_interval_is_refused(
    limited: Cluster,
) -> None:
    alice, admin = limited["alice"], limited["admin"]
    err = await refused(create(alice, "often", schedule=EVERY_MINUTE))
    assert err.status is Status.INVALID_ARGUMENT
    assert err.message == (
        "schedule: fires as often as every 1 minute, more often than the shortest interval "
        "user:alice may schedule (limits.shortest_interval = 5 minutes)"
    )
    ok = await create(alice, "ok", schedule=EVERY_5_MINUTES)
    edit = alice.jobs.Update(
        pb.UpdateJobRequest(
            job=pb.Job(id=ok.id, schedule=pb.Schedule(kind="interval", expression="30s")),
            update_mask=FieldMask(paths=["schedule"]),
        )
    )
    err = await refused(edit)
    assert err.status is Status.INVALID_ARGUMENT and "limits.shortest_interval" in (
        err.message or ""
    )
    stored = await alice.jobs.Get(pb.GetJobRequest(id=ok.id))
    assert stored.schedule.expression == "*/5 * * * *"
    # An edit of something else keeps working; admins are exempt.
    rename = alice.jobs.Update(
        pb.UpdateJobRequest(
            job=pb.Job(id=ok.id, description="d"), update_mask=FieldMask(paths=["description"])
        )
    )
    assert (await rename).description == "d"
    assert (await create(admin, "tick", schedule=EVERY_MINUTE)).HasField("next_fire_at")
