"""Regressions of the property tests: crafted requests that ended INTERNAL now answer
INVALID_ARGUMENT naming the field, and store nothing."""

from __future__ import annotations

import base64
import json

import pytest
from apikit import Cluster, job
from grpclib.const import Status
from grpclib.exceptions import GRPCError

from cronhive.api._generated.cronhive.v1 import cronhive_pb2 as pb


def token(values: object) -> str:
    """A page token as the server encodes them, around any JSON (not one it made)."""
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode()


@pytest.mark.parametrize(
    "expression",
    ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00"],
)
async def test_a_once_schedule_at_the_end_of_time_is_invalid(
    cluster: Cluster, expression: str
) -> None:
    msg = job("late", schedule=pb.Schedule(kind="once", expression=expression))
    with pytest.raises(GRPCError) as err:
        await cluster["alice"].jobs.Create(pb.CreateJobRequest(job=msg))
    assert err.value.status is Status.INVALID_ARGUMENT, err.value
    assert "schedule" in (err.value.message or "")
    listed = await cluster["alice"].jobs.List(pb.ListJobsRequest())
    assert list(listed.jobs) == []


@pytest.mark.parametrize(
    "page_token",
    [
        token(["\ud800", "x"]),
        token(["user:alice", "\udfff"]),
        token(["2020-01-01T00:00:00", "00000000-0000-0000-0000-000000000000"]),
    ],
)
async def test_crafted_page_tokens_are_invalid(cluster: Cluster, page_token: str) -> None:
    alice = cluster["alice"]
    calls = (
        lambda: alice.jobs.List(pb.ListJobsRequest(page_token=page_token)),
        lambda: alice.runs.ListExecutions(pb.ListExecutionsRequest(page_token=page_token)),
    )
    for call in calls:
        try:
            await call()
        except GRPCError as exc:
            assert exc.status is Status.INVALID_ARGUMENT, exc
            assert "page_token" in (exc.message or "")
        # (a token of two plain strings may also be a position: an empty page is fine)
