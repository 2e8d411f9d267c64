"""A job's and an ad-hoc run's own limits over the real API: checked (INVALID_ARGUMENT
naming the field), stored, shown, changed by update mask, snapshotted on the run."""

from __future__ import annotations

import pytest
from apikit import Cluster, create, job, wait_terminal
from google.protobuf.field_mask_pb2 import FieldMask
from grpclib.const import Status
from grpclib.exceptions import GRPCError

from cronhive.api._generated.cronhive.v1 import cronhive_pb2 as pb


@pytest.mark.parametrize(
    ("limits", "field"),
    [
        (pb.RunLimits(memory_bytes=1024), "limits.memory_bytes"),  # below 16 MiB
        (pb.RunLimits(memory_bytes=1 << 50), "limits.memory_bytes"),  # above 1 TiB
        (pb.RunLimits(processes=0), "limits.processes"),
        (pb.RunLimits(processes=10_000_000), "limits.processes"),
        (pb.RunLimits(open_files=3), "limits.open_files"),
        (pb.RunLimits(cpu_seconds=0), "limits.cpu_seconds"),
        (pb.RunLimits(cpu_weight=20_000), "limits.cpu_weight"),
    ],
)
async def test_bad_limits_are_refused_naming_the_field(
    cluster: Cluster, limits: pb.RunLimits, field: str
) -> None:
    alice = cluster["alice"]
    with pytest.raises(GRPCError) as err:
        await alice.jobs.Create(pb.CreateJobRequest(job=job("j", limits=limits)))
    assert err.value.status is Status.INVALID_ARGUMENT
    assert field in (err.value.message or "")
    with pytest.raises(GRPCError) as err:
        await alice.runs.Start(pb.StartRunRequest(command=["true"], limits=limits))
    assert err.value.status is Status.INVALID_ARGUMENT
    assert not (await alice.jobs.List(pb.ListJobsRequest())).jobs


async def test_a_sql_job_takes_no_process_limits(cluster: Cluster) -> None:
    sql = pb.SqlSpec(statement="SELECT 1", database="wh", role="etl")
    with pytest.raises(GRPCError) as err:
        await cluster["alice"].jobs.Create(
            pb.CreateJobRequest(
                job=pb.Job(name="q", enabled=True, sql=sql, limits=pb.RunLimits(processes=5))
            )
        )
    assert err.value.status is Status.INVALID_ARGUMENT
    assert "limits" in (err.value.message or "")


async def test_limits_are_stored_changed_and_carried_to_the_run(cluster: Cluster) -> None:
    alice = cluster["alice"]
    asked = pb.RunLimits(memory_bytes=64 << 20, processes=64, cpu_seconds=60)
    created = await create(alice, "limited", limits=asked)
    assert created.limits == asked
    assert (await alice.jobs.Get(pb.GetJobRequest(id=created.id))).limits == asked
    # An update that does not name limits keeps them; naming them replaces them.
    kept = await alice.jobs.Update(
        pb.UpdateJobRequest(
            job=pb.Job(id=created.id, description="x"),
            update_mask=FieldMask(paths=["description"]),
        )
    )
    assert kept.limits == asked
    lower = pb.RunLimits(processes=8)
    changed = await alice.jobs.Update(
        pb.UpdateJobRequest(
            job=pb.Job(id=created.id, limits=lower), update_mask=FieldMask(paths=["limits"])
        )
    )
    assert changed.limits == lower
    run = await alice.jobs.Trigger(pb.TriggerJobRequest(id=created.id))
    assert run.limits == lower
    done = await wait_terminal(alice, run.id)
    assert done.state == "succeeded", done
    assert "processes 8" in done.limits_applied
    cleared = await alice.jobs.Update(
        pb.UpdateJobRequest(job=pb.Job(id=created.id), update_mask=FieldMask(paths=["limits"]))
    )
    assert not cleared.HasField("limits")

    adhoc = await alice.runs.Start(
        pb.StartRunRequest(command=["true"], limits=pb.RunLimits(open_files=64))
    )
    assert adhoc.limits.open_files == 64
    ended = await wait_terminal(alice, adhoc.id)
    assert "open files 64 (RLIMIT_NOFILE" in ended.limits_applied, ended
    started = await alice.runs.Start(pb.StartRunRequest(command=["true"]))
    plain = await wait_terminal(alice, started.id)
    assert plain.limits_applied == "" and not plain.HasField("limits")
