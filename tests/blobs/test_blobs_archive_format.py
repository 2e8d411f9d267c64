"""The archive format (cronhive.blobs.archive) on both backends: chunks come back with
their seqs, streams and offsets, from any offset, across block boundaries; a corrupted
object is caught by the verification."""

from __future__ import annotations

import os
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID, uuid4

import pytest

from cronhive.blobs import BlobStore
from cronhive.blobs.archive import BLOCK, ArchiveCorrupt, ArchivedOutput, verify, write_archive
from cronhive.model import Execution, Outcome, OutputChunk, RunSpec, RunState, Stream
from cronhive.store import Finish, Store, open_store

NOW = datetime(2026, 6, 1, tzinfo=UTC)
BOTH = (Stream.STDOUT, Stream.STDERR)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = await open_store(f"sqlite:///{tmp_path / 'a.db'}")
    try:
        yield s
    finally:
        await s.close()


async def _run(store: Store, chunks: list[tuple[Stream, bytes]]) -> tuple[UUID, list[OutputChunk]]:
    node = await store.register_node(name="n", tags=frozenset(), capacity=1, ttl=600, now=NOW)
    ex = Execution(
        id=uuid4(), job_id=None, job_name=None, owner="user:a", run=RunSpec(command=("x",)),
        scheduled_for=NOW, not_before=NOW, queued_at=NOW,
    )  # fmt: skip
    await store.enqueue(ex)
    await store.claim(node.id, frozenset(), 1, NOW)
    offsets = dict.fromkeys(BOTH, 0)
    written = []
    for seq, (stream, data) in enumerate(chunks):
        written.append(
            OutputChunk(
                execution_id=ex.id, stream=stream, offset=offsets[stream], seq=seq, data=data
            )
        )
        offsets[stream] += len(data)
    for i in range(0, len(written), 100):
        await store.append_output(ex.id, node_id=node.id, chunks=written[i : i + 100])
    outcome = Outcome(state=RunState.SUCCEEDED, finished_at=NOW)
    await store.finish_many(
        [Finish(execution_id=ex.id, outcome=outcome)], node_id=node.id, retry=lambda _: None
    )
    return ex.id, written


async def _all(
    reader: ArchivedOutput,
    streams: tuple[Stream, ...] = BOTH,
    start: dict[Stream, int] | None = None,
) -> list[OutputChunk]:
    """Everything, in small pages (a follower's reads)."""
    out: list[OutputChunk] = []
    after = -1
    while True:
        got = await reader.read(streams=streams, after_seq=after, limit=7, start=start)
        out += got
        if len(got) < 7:
            return out
        after = got[-1].seq


async def test_chunks_come_back_as_written_from_any_offset(store: Store, blobs: BlobStore) -> None:
    rng = random.Random(13)
    chunks = []
    for _ in range(90):
        stream = rng.choice(BOTH)
        size = rng.choice([1, 100, 4096, 65536, 300_000])
        data = os.urandom(size) if rng.random() < 0.5 else b"log line\n" * (size // 9 + 1)
        chunks.append((stream, data[:size]))
    execution_id, written = await _run(store, chunks)
    manifest = await write_archive(store, blobs, execution_id)
    total = {s: sum(len(d) for st, d in chunks if st is s) for s in BOTH}
    assert total[Stream.STDOUT] > 2 * BLOCK  # several blocks, boundaries inside chunks
    reader = ArchivedOutput(blobs, execution_id, manifest)
    assert await _all(reader) == written
    only_err = await _all(reader, streams=(Stream.STDERR,))
    assert only_err == [c for c in written if c.stream is Stream.STDERR]

    for start_out in (0, 1, BLOCK - 1, BLOCK, BLOCK + 77, total[Stream.STDOUT] - 1):
        start = {Stream.STDOUT: start_out, Stream.STDERR: 0}
        got = await _all(reader, streams=(Stream.STDOUT,), start=start)
        data = b"".join(c.data for c in got)
        first = got[0].offset
        assert first <= start_out < first + len(got[0].data)
        whole = b"".join(c.data for c in written if c.stream is Stream.STDOUT)
        assert data == whole[first:]


async def test_a_changed_object_fails_verification(store: Store, blobs: BlobStore) -> None:
    execution_id, _ = await _run(store, [(Stream.STDOUT, b"hello " * 1000)])
    manifest = await write_archive(store, blobs, execution_id)
    key = manifest["streams"]["stdout"]["key"]
    stored = await blobs.get(key)
    await blobs.put(key, stored[:-1] + bytes([stored[-1] ^ 1]))
    with pytest.raises(ArchiveCorrupt):
        await verify(blobs, manifest)
