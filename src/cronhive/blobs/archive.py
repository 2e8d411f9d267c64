"""A run's output in the blob store: one object per stream, random access by byte.

Layout: `output/<execution id>/<stream>` holds the stream's bytes in blocks of
`BLOCK` bytes, each compressed on its own with zlib (or kept as is when that is not
smaller: random output does not compress), so a reader starting in the middle of
256 MiB fetches and inflates one block, not everything before it. The manifest (kept in
the database row that marks the run archived) lists each stream's blocks and SHA-256,
and every original chunk as [seq, stream, offset, position, length]: readers get the
very chunks (and seqs) they would have read from the database, so a follower switching
from the table to the archive mid-run goes on at its seq without a gap or a repeat.

Objects live under `output/<execution id>/<attempt>/`: retention deletes the prefix.

`write_archive` reads the chunks from the store, writes both objects, reads them back
and checks every byte against the hash of what the database held; only then may the
caller mark the run archived (`Store.archive_output`) and so delete its chunks.
"""

from __future__ import annotations

import asyncio
import bisect
import hashlib
import zlib
from collections.abc import AsyncIterator, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID, uuid4

from cronhive.blobs.base import BlobStore
from cronhive.errors import CronhiveError
from cronhive.model import OutputChunk, Stream
from cronhive.store.base import Store

BLOCK = 1 << 20  # raw bytes per compressed block
LEVEL = 1  # zlib level: most of the gain on text at a fraction of the cost
SAMPLE = 64 * 1024  # bytes of a block tried first (see _pack)
STREAMS = (Stream.STDOUT, Stream.STDERR)
READ_BATCH = 512  # chunks per database read while archiving
FORMAT = 1


class ArchiveCorrupt(CronhiveError):
    """An archive read back does not match what was written (never mark it archived)."""


def object_key(execution_id: UUID, attempt: str, stream: Stream) -> str:
    # `attempt`: each archiving attempt writes its own objects, so two nodes archiving
    # the same run at once never overwrite each other; the loser deletes its copy.
    return f"{run_prefix(execution_id)}/{attempt}/{stream.value}"


def run_prefix(execution_id: UUID) -> str:
    return f"output/{execution_id}"


def _pack(raw: bytes) -> tuple[bytes, str]:
    # zlib crawls through incompressible bytes (~13 MiB/s here, against ~50 for text):
    # a block whose first 64 KiB do not shrink by a tenth is kept as it is.
    sample = raw[:SAMPLE]
    if len(raw) > SAMPLE and len(zlib.compress(sample, LEVEL)) > len(sample) * 0.9:
        return raw, "r"
    packed = zlib.compress(raw, LEVEL)
    return (packed, "z") if len(packed) < len(raw) else (raw, "r")


def _unpack(stored: bytes, codec: str) -> bytes:
    try:
        return zlib.decompress(stored) if codec == "z" else stored
    except zlib.error as exc:
        raise ArchiveCorrupt(f"an archived block does not inflate: {exc}") from None


@dataclass
class _StreamWriter:
    """Collects one stream's chunks into blocks (only the stream in hand is in memory)."""

    raw: bytearray = field(default_factory=bytearray)
    blocks: list[list[Any]] = field(default_factory=list)  # [stored length, codec]
    size: int = 0
    digest: Any = field(default_factory=hashlib.sha256)

    def add(self, data: bytes) -> list[bytes]:
        self.raw += data
        self.size += len(data)
        self.digest.update(data)
        out = []
        while len(self.raw) >= BLOCK:
            out.append(self._cut(BLOCK))
        return out

    def _cut(self, n: int) -> bytes:
        stored, codec = _pack(bytes(self.raw[:n]))
        del self.raw[:n]
        self.blocks.append([len(stored), codec])
        return stored

    def finish(self) -> list[bytes]:
        return [self._cut(len(self.raw))] if self.raw else []


async def write_archive(store: Store, blobs: BlobStore, execution_id: UUID) -> dict[str, Any]:
    """Writes the run's output (as the database holds it now) to `blobs`, verifies it,
    and returns the manifest. Raises BlobUnavailable/StoreError (try again later) or
    ArchiveCorrupt."""
    entries: list[list[int]] = []
    streams: dict[str, Any] = {}
    attempt = uuid4().hex[:16]
    for index, stream in enumerate(STREAMS):
        writer = _StreamWriter()

        async def blocks(stream: Stream = stream, writer: _StreamWriter = writer,
                         index: int = index) -> AsyncIterator[bytes]:  # fmt: skip
            after = -1
            while True:
                chunks = await store.read_output(
                    execution_id, streams=(stream,), after_seq=after, limit=READ_BATCH
                )
                for chunk in chunks:
                    entries.append([chunk.seq, index, chunk.offset, writer.size, len(chunk.data)])
                    for block in await asyncio.to_thread(writer.add, chunk.data):
                        yield block
                    after = chunk.seq
                if len(chunks) < READ_BATCH:
                    break
            for block in writer.finish():
                yield block

        gen = blocks()
        first = await anext(gen, None)
        if first is None:
            continue  # nothing on this stream: no object

        key = object_key(execution_id, attempt, stream)
        await blobs.put(key, _prepend(first, gen))
        streams[stream.value] = {
            "key": key,
            "size": writer.size,
            "sha256": writer.digest.hexdigest(),
            "blocks": writer.blocks,
        }
    entries.sort()
    manifest = {"format": FORMAT, "block": BLOCK, "streams": streams, "chunks": entries}
    await verify(blobs, manifest)
    return manifest


async def verify(blobs: BlobStore, manifest: Mapping[str, Any]) -> None:
    """Reads every archived block back and checks sizes and hashes. Raises ArchiveCorrupt."""
    for name, info in manifest["streams"].items():
        stored_size = sum(length for length, _ in info["blocks"])
        if (await blobs.stat(info["key"])).size != stored_size:
            raise ArchiveCorrupt(f"archived {name}: size differs from what was written")
        digest, pos, size = hashlib.sha256(), 0, 0
        step = 16  # blocks per request
        blocks = info["blocks"]
        for i in range(0, len(blocks), step):
            group = blocks[i : i + step]
            length = sum(n for n, _ in group)
            data = await blobs.get(info["key"], pos, pos + length)
            if len(data) != length:
                raise ArchiveCorrupt(f"archived {name}: short read")
            raw = await asyncio.to_thread(_unpack_group, data, group)
            digest.update(raw)
            size += len(raw)
            pos += length
        if size != info["size"] or digest.hexdigest() != info["sha256"]:
            raise ArchiveCorrupt(f"archived {name}: bytes differ from the database's")


async def _prepend(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    yield first
    async for block in rest:
        yield block


def _unpack_group(data: bytes, group: list[list[Any]]) -> bytes:
    out, at = bytearray(), 0
    for length, codec in group:
        out += _unpack(data[at : at + length], codec)
        at += length
    return bytes(out)


class ArchivedOutput:
    """Reads one archived run's chunks back, as `Store.read_output` would have."""

    def __init__(self, blobs: BlobStore, execution_id: UUID, manifest: Mapping[str, Any]) -> None:
        self._blobs = blobs
        self._execution_id = execution_id
        self._block = int(manifest["block"])
        self._streams = manifest["streams"]
        self._chunks = manifest["chunks"]
        self._seqs = [c[0] for c in self._chunks]
        self._starts: dict[str, list[int]] = {}  # stored offset of each block
        for name, info in self._streams.items():
            starts, at = [], 0
            for length, _ in info["blocks"]:
                starts.append(at)
                at += length
            self._starts[name] = starts

    async def read(
        self,
        *,
        streams: Collection[Stream],
        after_seq: int = -1,
        limit: int = 256,
        start: Mapping[Stream, int] | None = None,
    ) -> list[OutputChunk]:
        """Chunks with seq > `after_seq` of `streams`, in seq order, skipping those that
        end at or before `start[stream]` (a reader starting at a byte offset)."""
        wanted = {STREAMS.index(s) for s in streams}
        picked: list[list[int]] = []
        i = bisect.bisect_right(self._seqs, after_seq)
        while i < len(self._chunks) and len(picked) < limit:
            seq, index, offset, pos, length = self._chunks[i]
            i += 1
            if index not in wanted:
                continue
            if start is not None and offset + length <= start.get(STREAMS[index], 0):
                continue
            picked.append([seq, index, offset, pos, length])
        raw = {index: await self._span(index, picked) for index in wanted}
        out = []
        for seq, index, offset, pos, length in picked:
            base, data = raw[index]
            out.append(
                OutputChunk(
                    execution_id=self._execution_id,
                    stream=STREAMS[index],
                    offset=offset,
                    seq=seq,
                    data=bytes(data[pos - base : pos - base + length]),
                )
            )
        return out

    async def _span(self, index: int, picked: list[list[int]]) -> tuple[int, bytes]:
        """The raw bytes of stream `index` that the picked chunks cover, and where they
        begin (one ranged get for the blocks they span)."""
        mine = [c for c in picked if c[1] == index]
        if not mine:
            return 0, b""
        info = self._streams[STREAMS[index].value]
        first = mine[0][3] // self._block
        last = max(first, (mine[-1][3] + mine[-1][4] - 1) // self._block)
        blocks = info["blocks"][first : last + 1]
        begin = self._starts[STREAMS[index].value][first]
        end = begin + sum(n for n, _ in blocks)
        data = await self._blobs.get(info["key"], begin, end)
        if len(data) != end - begin:
            raise ArchiveCorrupt(f"archived {STREAMS[index].value}: short read")
        return first * self._block, await asyncio.to_thread(_unpack_group, data, blocks)
