"""The policy decides: the scheduler role for schedules, run_as grants per owner."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from apikit import Cluster, create, running_cluster, status_of
from google.protobuf.field_mask_pb2 import FieldMask
from grpclib.const import Status

from cronhive.api._generated.cronhive.v1 import cronhive_pb2 as pb
from cronhive.auth.policy import parse_policy

POLICY = """
[users.alice]
roles = ["scheduler"]
run_as = ["etl"]

[users.admin]
roles = ["admin"]
"""
CRON = pb.Schedule(kind="cron", expression="*/5 * * * *")


@pytest.fixture
async def strict(tmp_path: Path) -> AsyncIterator[Cluster]:
    async with running_cluster(tmp_path, policy=parse_policy(POLICY), work=False) as c:
        yield c


async def test_only_schedulers_schedule(strict: Cluster) -> None:
    carol, alice = strict["carol"], strict["alice"]
    assert await status_of(create(carol, "cron", schedule=CRON)) is Status.PERMISSION_DENIED
    plain = await create(carol, "plain")  # triggered only: no role needed
    update = carol.jobs.Update(
        pb.UpdateJobRequest(
            job=pb.Job(id=plain.id, schedule=CRON), update_mask=FieldMask(paths=["schedule"])
        )
    )
    assert await status_of(update) is Status.PERMISSION_DENIED
    assert not (await carol.jobs.Get(pb.GetJobRequest(id=plain.id))).HasField("schedule")
    scheduled = await create(alice, "cron", schedule=CRON)
    assert scheduled.HasField("next_fire_at")


async def test_run_as_needs_a_grant_for_the_owner(strict: Cluster) -> None:
    alice = strict["alice"]
    assert (await create(alice, "etl", run_as="etl")).run_as == "etl"
    assert await status_of(create(alice, "root", run_as="root")) is Status.PERMISSION_DENIED
    # The grant is alice's, not her group's.
    shared = create(alice, "g", run_as="etl", owner="group:data")
    assert await status_of(shared) is Status.PERMISSION_DENIED
    start = alice.runs.Start(pb.StartRunRequest(command=["true"], run_as="etl"))
    assert await status_of(start) is None
    names = [j.name for j in (await strict["admin"].jobs.List(pb.ListJobsRequest())).jobs]
    assert names == ["etl"]
