"""Output: many live followers, late followers, 1 GiB in bounded memory, the sink."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib

import psutil
import pytest

from cronhive.runner import Chunk, Runner, RunSpec, RunState, Stream

# Writes 200 numbered lines to stdout and 200 to stderr, with pauses, so followers
# attach to a process that is still writing.
WRITER = (
    "i=0; while [ $i -lt 200 ]; do echo out-$i; echo err-$i >&2; i=$((i+1)); "
    "[ $((i % 50)) -eq 0 ] && sleep 0.05; done"
)
EXPECTED_OUT = b"".join(b"out-%d\n" % i for i in range(200))
EXPECTED_ERR = b"".join(b"err-%d\n" % i for i in range(200))


async def collect(it: object) -> bytes:
    return b"".join([d async for d in it])  # type: ignore[attr-defined]


async def test_fifty_live_followers_and_a_late_one(runner: Runner, run_id: str) -> None:
    h = await runner.start(RunSpec(run_id=run_id, argv=[WRITER], shell=True))
    followers = [asyncio.create_task(collect(h.follow(Stream.STDOUT))) for _ in range(50)]
    await asyncio.sleep(0.06)  # some attach mid-run, from byte 0 and from an offset
    followers += [asyncio.create_task(collect(h.follow(Stream.STDOUT))) for _ in range(5)]
    mid = asyncio.create_task(collect(h.follow(Stream.STDOUT, offset=7)))
    err = asyncio.create_task(collect(h.follow(Stream.STDERR)))
    # (On a loaded host the writer may be done by now: late followers must then get
    # every byte from the spool, which the same assertions check.)
    outs = await asyncio.gather(*followers)
    res = await h.wait()
    assert res.state is RunState.SUCCEEDED
    assert all(o == EXPECTED_OUT for o in outs)
    assert await mid == EXPECTED_OUT[7:]
    assert await err == EXPECTED_ERR
    assert await collect(h.follow(Stream.STDOUT)) == EXPECTED_OUT  # after exit
    assert await collect(h.follow(Stream.STDOUT, offset=10**9)) == b""


async def test_stalled_and_cancelled_followers_do_not_block(runner: Runner, run_id: str) -> None:
    h = await runner.start(RunSpec(run_id=run_id, argv=["head", "-c", "8M", "/dev/zero"]))
    stalled = h.follow(Stream.STDOUT)
    assert len(await anext(stalled)) > 0  # reads once, then never again
    cancelled = asyncio.create_task(collect(h.follow(Stream.STDOUT)))
    await asyncio.sleep(0)
    cancelled.cancel()
    res = await h.wait()
    assert res.state is RunState.SUCCEEDED and res.stdout_bytes == 8 << 20
    await stalled.aclose()
    with pytest.raises(asyncio.CancelledError):
        await cancelled


class RecordingSink:
    def __init__(self, delay: float = 0.0) -> None:
        self.chunks: list[Chunk] = []
        self.closed = 0
        self.delay = delay

    async def write(self, chunk: Chunk) -> None:
        assert self.closed == 0
        if self.delay:
            await asyncio.sleep(self.delay)
        self.chunks.append(chunk)

    async def close(self) -> None:
        self.closed += 1


async def test_sink_gets_every_chunk_in_order(runner: Runner, run_id: str) -> None:
    sink = RecordingSink()
    h = await runner.start(RunSpec(run_id=run_id, argv=[WRITER], shell=True), sink=sink)
    await h.wait()
    assert sink.closed == 1  # closed before wait() returns
    assert [c.seq for c in sink.chunks] == list(range(len(sink.chunks)))
    for stream, expected in ((Stream.STDOUT, EXPECTED_OUT), (Stream.STDERR, EXPECTED_ERR)):
        mine = [c for c in sink.chunks if c.stream is stream]
        offsets = [c.offset for c in mine]
        assert offsets == sorted(offsets) and offsets[0] == 0
        assert b"".join(c.data for c in mine) == expected


async def test_slow_sink_bounds_memory_but_not_followers(runner: Runner, run_id: str) -> None:
    sink = RecordingSink(delay=0.01)
    h = await runner.start(
        RunSpec(run_id=run_id, argv=["head", "-c", "24M", "/dev/zero"]), sink=sink
    )
    # the follower reads whatever is in the spool; the sink paces the pipe
    got = 0
    async for data in h.follow(Stream.STDOUT):
        got += len(data)
        assert h._sink_bytes <= 5 << 20  # SINK_HIGH plus one read
    res = await h.wait()
    assert got == res.stdout_bytes == 24 << 20
    assert sum(len(c.data) for c in sink.chunks) == 24 << 20


class FailingSink(RecordingSink):
    async def write(self, chunk: Chunk) -> None:
        raise RuntimeError("sink broke")


async def test_failing_sink_is_detached(
    runner: Runner, caplog: pytest.LogCaptureFixture, run_id: str
) -> None:
    sink = FailingSink()
    h = await runner.start(RunSpec(run_id=run_id, argv=["echo", "hi"]), sink=sink)
    res = await h.wait()
    assert res.state is RunState.SUCCEEDED and sink.closed == 1
    assert f"sink of run {run_id} failed" in caplog.text
    assert await collect(h.follow(Stream.STDOUT)) == b"hi\n"


@pytest.mark.slow
async def test_one_gib_in_bounded_memory(runner: Runner, run_id: str) -> None:
    proc = psutil.Process()
    before = proc.memory_info().rss
    peak = before
    h = await runner.start(RunSpec(run_id=run_id, argv=["head", "-c", "1G", "/dev/zero"]))
    digest = hashlib.sha256()
    n = 0
    async for data in h.follow(Stream.STDOUT):
        digest.update(data)
        n += len(data)
        if n % (64 << 20) < len(data):
            peak = max(peak, proc.memory_info().rss)
    res = await h.wait()
    peak = max(peak, proc.memory_info().rss)
    assert n == res.stdout_bytes == 1 << 30
    expected = hashlib.sha256()
    zeros = bytes(1 << 20)
    for _ in range(1024):
        expected.update(zeros)
    assert digest.hexdigest() == expected.hexdigest()
    assert peak - before < 50 << 20, f"RSS grew by {(peak - before) >> 20} MiB"
    runner.discard(run_id)


async def test_sink_closed_when_the_run_cannot_start(runner: Runner, run_id: str) -> None:
    for i, spec_kw in enumerate(({"argv": ["/no/such"]}, {"argv": ["id"], "user": "no-such-u"})):
        sink = RecordingSink()
        h = await runner.start(RunSpec(run_id=f"{run_id}-{i}", **spec_kw), sink=sink)  # type: ignore[arg-type]
        res = await h.wait()
        assert res.state is RunState.FAILED and sink.closed == 1 and sink.chunks == []


async def test_the_cap_holds_for_the_spool_file_while_the_run_writes(
    runner: Runner, run_id: str
) -> None:
    sink = RecordingSink()
    spec = RunSpec(run_id=run_id, argv=["head", "-c", "300M", "/dev/zero"], output_cap=1024)
    h = await runner.start(spec, sink=sink)
    path = runner.spool_dir / f"{run_id}.stdout"
    biggest = 0
    while h.result is None:  # sample the file as the run writes
        with contextlib.suppress(FileNotFoundError):
            biggest = max(biggest, path.stat().st_size)
        await asyncio.sleep(0.0005)
    res = await h.wait()
    assert biggest <= 1024 and path.stat().st_size == 1024  # never past it, not even a buffer
    assert res.state is RunState.SUCCEEDED and res.output_capped
    assert res.stdout_bytes == 300 << 20  # what the run wrote; all read, the rest dropped
    assert await collect(h.follow(Stream.STDOUT)) == bytes(1024)
    assert b"".join(c.data for c in sink.chunks) == bytes(1024)


async def test_the_cap_counts_both_streams(runner: Runner, run_id: str) -> None:
    script = "printf 'aaaa'; printf 'bbbb' >&2; printf 'cccc'"
    res = await (
        await runner.start(RunSpec(run_id=run_id, argv=[script], shell=True, output_cap=6))
    ).wait()
    out = await collect(runner.get(run_id).follow(Stream.STDOUT))
    err = await collect(runner.get(run_id).follow(Stream.STDERR))
    assert len(out) + len(err) == 6 and res.output_capped
    assert (res.stdout_bytes, res.stderr_bytes) == (8, 4)
    under = await (
        await runner.start(RunSpec(run_id=f"{run_id}-u", argv=["echo", "hi"], output_cap=3))
    ).wait()
    assert (
        not under.output_capped
        and await collect(runner.get(f"{run_id}-u").follow(Stream.STDOUT)) == b"hi\n"
    )
