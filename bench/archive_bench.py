"""The output archive: how long archiving a run's output takes (read the chunks, compress,
write, read back and verify), the size it takes, and a read from the middle.

    python bench/archive_bench.py [--mib 64]

On a SQLite store and the local blob directory (no network: the cost of the format and
the verification, not of an S3 server). Random bytes (incompressible, blocks kept raw)
and log-like text.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

from cronhive.blobs import LocalBlobs
from cronhive.blobs.archive import ArchivedOutput, write_archive
from cronhive.model import Execution, Outcome, OutputChunk, RunSpec, RunState, Stream
from cronhive.store import Finish, Store, open_store

CHUNK = 64 * 1024  # what the runner ships from a pipe, typically


def _text(size: int) -> bytes:
    line = b"2026-12-01T11:00:00Z INFO worker-7 processed item %08d in 12.3 ms\n"
    out, i = bytearray(), 0
    while len(out) < size:
        out += line % i
        i += 1
    return bytes(out[:size])


async def _run_with(store: Store, body: bytes) -> Execution:
    now = datetime.now(UTC)
    node = await store.register_node(
        name=f"b{uuid4().hex[:6]}", tags=frozenset(), capacity=1, ttl=3600, now=now
    )
    run = RunSpec(command=("x",))
    ex = Execution(
        id=uuid4(), job_id=None, job_name=None, owner="user:bench", run=run,
        scheduled_for=now, not_before=now, queued_at=now,
    )  # fmt: skip
    await store.enqueue(ex)
    await store.claim(node.id, frozenset(), 1, now)
    for seq, at in enumerate(range(0, len(body), CHUNK * 16)):
        chunks = [
            OutputChunk(
                execution_id=ex.id,
                stream=Stream.STDOUT,
                offset=o,
                seq=seq * 16 + i,
                data=body[o : o + CHUNK],
            )
            for i, o in enumerate(range(at, min(at + CHUNK * 16, len(body)), CHUNK))
        ]
        await store.append_output(ex.id, node_id=node.id, chunks=chunks)
    outcome = Outcome(state=RunState.SUCCEEDED, finished_at=now, stdout_bytes=len(body))
    end = Finish(execution_id=ex.id, outcome=outcome)
    await store.finish_many([end], node_id=node.id, retry=lambda _: None)
    await store.deregister_node(node.id, now=now)
    return ex


async def main(mib: int) -> None:
    size = mib << 20
    with tempfile.TemporaryDirectory() as tmp:
        store = await open_store(f"sqlite:///{Path(tmp) / 'b.db'}")
        blobs = LocalBlobs(Path(tmp) / "blobs")
        try:
            for kind, body in (("random", os.urandom(size)), ("text", _text(size))):
                ex = await _run_with(store, body)
                began = time.perf_counter()
                manifest = await write_archive(store, blobs, ex.id)
                took = time.perf_counter() - began
                stored = sum(n for n, _ in manifest["streams"]["stdout"]["blocks"])
                reader = ArchivedOutput(blobs, ex.id, manifest)
                began = time.perf_counter()
                middle = await reader.read(streams=(Stream.STDOUT,), limit=16,
                                           start={Stream.STDOUT: size // 2})  # fmt: skip
                read = time.perf_counter() - began
                assert middle[0].offset <= size // 2 < middle[0].offset + len(middle[0].data)
                print(
                    f"{kind:>6} {mib} MiB: archived (compress, write, read back, verify) "
                    f"in {took:.2f} s = {mib / took:.0f} MiB/s; stored {stored / size:.1%} "
                    f"of the bytes; 1 MiB from the middle in {read * 1000:.0f} ms"
                )
        finally:
            await store.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=64)
    asyncio.run(main(parser.parse_args().mib))
