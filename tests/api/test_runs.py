"""RunService over real mTLS: ad-hoc runs end to end, output streaming, stop, history."""

from __future__ import annotations

import asyncio
import itertools

from apikit import Cluster, status_of, wait_terminal
from grpclib.const import Status

from cronhive.api._generated.cronhive.v1 import cronhive_pb2 as pb
from cronhive.api.client import Client

SCRIPT = "echo hi; echo err >&2; exit 3"


async def _output(client: Client, **fields: object) -> list[pb.OutputChunk]:
    chunks: list[pb.OutputChunk] = await client.runs.StreamOutput(
        pb.StreamOutputRequest(**fields)  # type: ignore[arg-type]
    )
    return chunks


def _joined(chunks: list[pb.OutputChunk], stream: str) -> bytes:
    return b"".join(c.data for c in chunks if c.stream == stream)


async def test_adhoc_run_end_to_end(cluster: Cluster) -> None:
    alice = cluster["alice"]
    started = await alice.runs.Start(pb.StartRunRequest(command=["sh", "-c", SCRIPT]))
    assert started.owner == "user:alice" and started.state == "queued" and not started.job_id
    # Follow from the start: ends by itself once the run is over and all is sent.
    chunks = await asyncio.wait_for(_output(alice, id=started.id, follow=True), 20)
    assert _joined(chunks, "stdout") == b"hi\n"
    assert _joined(chunks, "stderr") == b"err\n"
    for name in ("stdout", "stderr"):  # each stream contiguous, in order
        ends = [(c.offset, c.offset + len(c.data)) for c in chunks if c.stream == name]
        assert all(a[1] == b[0] for a, b in itertools.pairwise(ends))
    status = await alice.runs.GetStatus(pb.GetStatusRequest(id=started.id))
    assert status.state == "failed" and status.HasField("exit_code") and status.exit_code == 3
    assert status.node_name == "n1" and status.stdout_bytes == 3 and status.stderr_bytes == 4


async def test_stream_offsets_and_one_stream(cluster: Cluster) -> None:
    alice = cluster["alice"]
    started = await alice.runs.Start(
        pb.StartRunRequest(command=["printf 'abcdef'; printf 'XYZ' >&2"], shell=True)
    )
    await wait_terminal(alice, started.id)
    assert _joined(await _output(alice, id=started.id, stdout_offset=2), "stdout") == b"cdef"
    tail = await _output(alice, id=started.id, stream="stderr", stderr_offset=1)
    assert [(c.stream, c.offset, c.data) for c in tail] == [("stderr", 1, b"YZ")]
    assert await _output(alice, id=started.id, stdout_offset=6, stderr_offset=3) == []
    bad = await status_of(_output(alice, id=started.id, stream="both"))
    assert bad is Status.INVALID_ARGUMENT


async def test_follow_live_output_then_stop(cluster: Cluster) -> None:
    alice = cluster["alice"]
    started = await alice.runs.Start(
        pb.StartRunRequest(command=["echo first; sleep 30"], shell=True, timeout_seconds=60)
    )
    async with alice.runs.StreamOutput.open() as call:
        await call.send_message(pb.StreamOutputRequest(id=started.id, follow=True), end=True)
        first = await asyncio.wait_for(call.recv_message(), 20)
        assert first is not None and first.data == b"first\n"
        stopped = await alice.runs.Stop(pb.StopRunRequest(id=started.id))
        assert stopped.id == started.id
        # The follower ends once the stop has taken effect.
        assert await asyncio.wait_for(call.recv_message(), 20) is None
    final = await wait_terminal(alice, started.id)
    assert final.state == "stopped"
    # Stopping a finished run is a no-op.
    again = await alice.runs.Stop(pb.StopRunRequest(id=started.id))
    assert again.state == "stopped"


async def test_list_executions_by_state_and_pages(cluster: Cluster) -> None:
    alice = cluster["alice"]
    ids = []
    for code in (0, 1, 0, 1, 0):
        e = await alice.runs.Start(pb.StartRunRequest(command=[f"exit {code}"], shell=True))
        ids.append(e.id)
    for i in ids:
        await wait_terminal(alice, i)
    failed = await alice.runs.ListExecutions(pb.ListExecutionsRequest(states=["failed"]))
    assert sorted(e.id for e in failed.executions) == sorted([ids[1], ids[3]])
    seen: list[str] = []
    token = ""
    while True:
        page = await alice.runs.ListExecutions(
            pb.ListExecutionsRequest(page_size=2, page_token=token)
        )
        seen += [e.id for e in page.executions]
        token = page.next_page_token
        if not token:
            break
    assert seen == ids[::-1]  # newest first
    bad = await status_of(alice.runs.ListExecutions(pb.ListExecutionsRequest(states=["done"])))
    assert bad is Status.INVALID_ARGUMENT


async def test_command_not_found_is_an_error_not_a_crash(cluster: Cluster) -> None:
    alice = cluster["alice"]
    started = await alice.runs.Start(pb.StartRunRequest(command=["/no/such/binary"]))
    final = await wait_terminal(alice, started.id)
    assert final.state == "failed" and final.error
    assert await _output(alice, id=started.id, follow=True) == []
