"""JobService over real mTLS: the life of a job, paging, update masks, bad input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from apikit import Cluster, create, job, running_cluster, status_of, wait_terminal
from google.protobuf.field_mask_pb2 import FieldMask
from grpclib.const import Status
from grpclib.exceptions import GRPCError

from cronhive.api._generated.cronhive.v1 import cronhive_pb2 as pb
from cronhive.engine.clock import ManualClock


async def test_create_get_update_pause_resume_trigger_delete(cluster: Cluster) -> None:
    alice = cluster["alice"]
    created = await create(
        alice,
        "nightly",
        schedule=pb.Schedule(kind="cron", expression="0 3 * * *", timezone="Europe/Berlin"),
        env={"A": "1"},
        timeout_seconds=30,
        description="backup",
    )
    assert created.owner == "user:alice"
    assert created.HasField("next_fire_at")
    fire = created.next_fire_at.ToDatetime(tzinfo=UTC)
    assert datetime.now(UTC) < fire <= datetime.now(UTC) + timedelta(days=1, hours=2)
    assert (await alice.jobs.Get(pb.GetJobRequest(id=created.id))) == created

    # Only the masked field changes; the absent optional timeout clears it when named.
    updated = await alice.jobs.Update(
        pb.UpdateJobRequest(
            job=pb.Job(id=created.id, description="nightly backup"),
            update_mask=FieldMask(paths=["description", "timeout_seconds"]),
        )
    )
    assert updated.description == "nightly backup"
    assert not updated.HasField("timeout_seconds")
    assert updated.schedule == created.schedule and list(updated.command) == ["true"]

    paused = await alice.jobs.Pause(pb.PauseJobRequest(id=created.id))
    assert not paused.enabled and not paused.HasField("next_fire_at")
    resumed = await alice.jobs.Resume(pb.ResumeJobRequest(id=created.id))
    assert resumed.enabled and resumed.next_fire_at == created.next_fire_at

    execution = await alice.jobs.Trigger(pb.TriggerJobRequest(id=created.id))
    assert execution.job_id == created.id and execution.state == "queued"
    done = await wait_terminal(alice, execution.id)
    assert done.state == "succeeded" and done.exit_code == 0

    await alice.jobs.Delete(pb.DeleteJobRequest(id=created.id))
    with pytest.raises(GRPCError) as err:
        await alice.jobs.Get(pb.GetJobRequest(id=created.id))
    assert err.value.status is Status.NOT_FOUND
    # History outlives the job.
    history = await alice.runs.ListExecutions(pb.ListExecutionsRequest(job_id=created.id))
    assert [e.id for e in history.executions] == [execution.id]

    kinds = [e.kind for e in await cluster.store.list_events(visible_to=None, limit=100)]
    for kind in ("job.created", "job.updated", "job.paused", "job.resumed", "run.queued"):
        assert kind in kinds
    assert "job.deleted" in kinds


async def test_list_pages_and_filters(cluster: Cluster) -> None:
    alice = cluster["alice"]
    for i in range(7):
        await create(alice, f"job-{i}", enabled=i % 2 == 0)
    await create(alice, "shared", owner="group:data")
    seen: list[str] = []
    token = ""
    while True:
        page = await alice.jobs.List(pb.ListJobsRequest(page_size=3, page_token=token))
        assert len(page.jobs) <= 3
        seen += [f"{j.owner}/{j.name}" for j in page.jobs]
        token = page.next_page_token
        if not token:
            break
    assert seen == ["group:data/shared"] + [f"user:alice/job-{i}" for i in range(7)]
    mine = await alice.jobs.List(pb.ListJobsRequest(owner="user:alice", enabled=True))
    assert [j.name for j in mine.jobs] == ["job-0", "job-2", "job-4", "job-6"]
    prefixed = await alice.jobs.List(pb.ListJobsRequest(name_prefix="sh"))
    assert [j.name for j in prefixed.jobs] == ["shared"]
    bad = await status_of(alice.jobs.List(pb.ListJobsRequest(page_token="nope!")))
    assert bad is Status.INVALID_ARGUMENT


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "a b"}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"command": []}, "command"),
        ({"command": ["x" * 4097]}, "command"),
        ({"command": ["a\x00b"]}, "command"),
        ({"command": ["a"] * 257}, "command"),
        ({"env": {"1BAD": "x"}}, "env"),
        ({"env": {"A": "v" * 4097}}, "env"),
        ({"cwd": "relative/dir"}, "cwd"),
        ({"description": "d" * 2049}, "description"),
        ({"timeout_seconds": 0}, "timeout_seconds"),
        ({"timeout_seconds": 8 * 86400}, "timeout_seconds"),
        ({"timeout_seconds": float("nan")}, "timeout_seconds"),
        ({"retry": pb.RetryPolicy(max_retries=101)}, "retry.max_retries"),
        ({"retry": pb.RetryPolicy(delay_seconds=-1)}, "retry.delay_seconds"),
        ({"concurrency": "sometimes"}, "concurrency"),
        ({"misfire": "never"}, "misfire"),
        ({"target_tags": ["bad tag"]}, "target_tags"),
        ({"output_cap_bytes": 0}, "output_cap_bytes"),
        ({"owner": "nobody"}, "owner"),
        ({"schedule": pb.Schedule(kind="cron", expression="61 * * * *")}, "schedule"),
        (
            {"schedule": pb.Schedule(kind="cron", expression="0 3 * * *", timezone="Mars/Base")},
            "timezone",
        ),
        ({"run_as": "root; rm"}, "run_as"),
    ],
)
async def test_bad_input_names_the_field_and_stores_nothing(
    cluster: Cluster, fields: dict[str, object], field: str
) -> None:
    alice = cluster["alice"]
    fields.setdefault("name", "job")
    with pytest.raises(GRPCError) as err:
        await alice.jobs.Create(pb.CreateJobRequest(job=job(**fields)))  # type: ignore[arg-type]
    assert err.value.status is Status.INVALID_ARGUMENT
    assert field in (err.value.message or "")
    assert not (await alice.jobs.List(pb.ListJobsRequest())).jobs


async def test_refusals_store_nothing(cluster: Cluster) -> None:
    carol = cluster["carol"]
    # A group carol is not in, and a run_as nobody granted: PERMISSION_DENIED (she named it).
    assert await status_of(create(carol, "j", owner="group:data")) is Status.PERMISSION_DENIED
    assert await status_of(create(carol, "j", run_as="etl")) is Status.PERMISSION_DENIED
    assert await status_of(create(carol, "j")) is None
    assert await status_of(create(carol, "j")) is Status.ALREADY_EXISTS
    jobs = (await cluster["admin"].jobs.List(pb.ListJobsRequest())).jobs
    assert [(j.owner, j.name) for j in jobs] == [("user:carol", "j")]


async def test_ids_must_be_uuids(cluster: Cluster) -> None:
    alice = cluster["alice"]
    for call in (
        alice.jobs.Get(pb.GetJobRequest(id="1")),
        alice.jobs.Delete(pb.DeleteJobRequest(id="")),
        alice.runs.GetStatus(pb.GetStatusRequest(id="not-a-uuid")),
        alice.runs.ListExecutions(pb.ListExecutionsRequest(job_id="x")),
    ):
        assert await status_of(call) is Status.INVALID_ARGUMENT


async def test_next_fire_follows_the_injected_clock(tmp_path: Path) -> None:
    clock = ManualClock(datetime(2030, 1, 1, tzinfo=UTC))
    # A lease longer than the jumps of the clock: this node must not fence itself.
    async with running_cluster(tmp_path, work=False, clock=clock, lease_ttl=1e6) as cluster:
        alice = cluster["alice"]
        hourly = pb.Schedule(kind="interval", expression="1h")
        job = await create(alice, "hourly", schedule=hourly)
        assert job.next_fire_at.ToDatetime(tzinfo=UTC) == datetime(2030, 1, 1, 1, tzinfo=UTC)
        paused = await alice.jobs.Pause(pb.PauseJobRequest(id=job.id))
        assert not paused.HasField("next_fire_at")
        await clock.advance(3.5 * 3600)
        resumed = await alice.jobs.Resume(pb.ResumeJobRequest(id=job.id))
        assert resumed.next_fire_at.ToDatetime(tzinfo=UTC) == datetime(2030, 1, 1, 4, tzinfo=UTC)
        noon = pb.Schedule(kind="cron", expression="0 12 * * *", timezone="Europe/Berlin")
        moved = await alice.jobs.Update(
            pb.UpdateJobRequest(
                job=pb.Job(id=job.id, schedule=noon, owner="group:data"),
                update_mask=FieldMask(paths=["schedule", "owner"]),
            )
        )
        assert moved.next_fire_at.ToDatetime(tzinfo=UTC) == datetime(2030, 1, 1, 11, tzinfo=UTC)
        assert moved.owner == "group:data"
        # Bob, in the group, now sees it; carol still does not.
        assert (await cluster["bob"].jobs.Get(pb.GetJobRequest(id=job.id))).name == "hourly"
        assert (
            await status_of(cluster["carol"].jobs.Get(pb.GetJobRequest(id=job.id)))
            is Status.NOT_FOUND
        )
