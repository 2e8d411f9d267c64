"""The BlobStore contract (cronhive.blobs.base), on the local directory and on a real
S3-protocol server process (moto)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from s3kit import MotoServer, s3_settings

from cronhive.blobs import (
    BlobExists,
    BlobNotFound,
    BlobStore,
    BlobUnavailable,
    LocalBlobs,
)
from cronhive.blobs.s3 import S3Blobs
from cronhive.errors import InvalidInput


async def test_put_get_stat_delete(blobs: BlobStore) -> None:
    info = await blobs.put("a/b.txt", b"hello world")
    assert (info.key, info.size) == ("a/b.txt", 11)
    assert await blobs.get("a/b.txt") == b"hello world"
    assert (await blobs.stat("a/b.txt")).size == 11
    await blobs.put("a/b.txt", b"replaced")  # overwrite without exclusive
    assert await blobs.get("a/b.txt") == b"replaced"
    await blobs.delete("a/b.txt")
    with pytest.raises(BlobNotFound):
        await blobs.get("a/b.txt")
    with pytest.raises(BlobNotFound):
        await blobs.stat("a/b.txt")
    await blobs.delete("a/b.txt")  # deleting what is gone is fine


async def test_byte_ranges_are_slices(blobs: BlobStore) -> None:
    body = bytes(range(256)) * 40
    await blobs.put("r", body)
    for start, end in [(0, 1), (5, 100), (1000, 10240), (10000, None), (0, None), (300, 20000)]:
        assert await blobs.get("r", start, end) == body[start:end], (start, end)
    assert await blobs.get("r", 10240) == b""
    assert await blobs.get("r", 20000, 30000) == b""
    assert await blobs.get("r", 7, 7) == b""


async def test_exclusive_put_refuses_a_taken_key(blobs: BlobStore) -> None:
    await blobs.put("x/once", b"first", exclusive=True)
    with pytest.raises(BlobExists):
        await blobs.put("x/once", b"second", exclusive=True)
    assert await blobs.get("x/once") == b"first"


async def test_concurrent_exclusive_puts_have_one_winner(blobs: BlobStore) -> None:
    results = await asyncio.gather(
        *(blobs.put("race", f"w{i}".encode(), exclusive=True) for i in range(5)),
        return_exceptions=True,
    )
    winners = [r for r in results if not isinstance(r, BaseException)]
    assert len(winners) == 1
    assert all(isinstance(r, BlobExists) for r in results if isinstance(r, BaseException))
    assert await blobs.get("race") in {f"w{i}".encode() for i in range(5)}


async def _pieces(n: int, size: int) -> AsyncIterator[bytes]:
    for i in range(n):
        yield bytes([i % 256]) * size
        await asyncio.sleep(0)


async def test_streamed_put_of_a_large_object(blobs: BlobStore) -> None:
    # 12 MiB in 1 MiB pieces: a multipart upload on S3 (parts of 5 MiB).
    info = await blobs.put("big/object", _pieces(12, 1 << 20))
    assert info.size == 12 << 20
    assert (await blobs.stat("big/object")).size == 12 << 20
    middle = await blobs.get("big/object", (5 << 20) - 3, (5 << 20) + 3)
    assert middle == bytes([4]) * 3 + bytes([5]) * 3


async def test_list_by_prefix(blobs: BlobStore) -> None:
    for key in ("p/1", "p/2", "p/q/3", "pp/4", "other"):
        await blobs.put(key, key.encode())
    found = sorted((i.key, i.size) for i in [i async for i in blobs.list("p")])
    assert found == [("p/1", 3), ("p/2", 3), ("p/q/3", 5)]
    assert [i async for i in blobs.list("nothing")] == []


@pytest.mark.parametrize("key", ["", "/abs", "a//b", "a/../b", "..", "a b", "a/./b"])
async def test_bad_keys_are_refused(blobs: BlobStore, key: str) -> None:
    with pytest.raises(InvalidInput):
        await blobs.put(key, b"x")
    with pytest.raises(InvalidInput):
        await blobs.get(key)


async def test_a_stopped_s3_server_is_unavailable_not_missing(tmp_path: Path) -> None:
    server = MotoServer(tmp_path)
    server.start()
    store = S3Blobs(s3_settings(server, "gone"))
    await store.put("k", b"v")
    server.stop()
    with pytest.raises(BlobUnavailable):
        await store.get("k")
    with pytest.raises(BlobUnavailable):
        await store.put("k2", b"v")
    with pytest.raises(BlobUnavailable):
        await store.stat("k")
    server.start()  # moto starts empty again: the object is gone, and says so
    with pytest.raises(BlobNotFound):
        await store.get("k")
    server.stop()


async def test_local_put_leaves_no_partial_object(tmp_path: Path) -> None:
    store = LocalBlobs(tmp_path / "b")

    async def failing() -> AsyncIterator[bytes]:
        yield b"part"
        raise RuntimeError("the source broke")

    with pytest.raises(RuntimeError):
        await store.put("k", failing())
    with pytest.raises(BlobNotFound):
        await store.get("k")
    assert [i async for i in store.list("k")] == []
    assert os.listdir(tmp_path / "b") == []
