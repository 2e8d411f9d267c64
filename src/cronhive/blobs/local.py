"""The embedded default: a directory of this node (under the data dir).

Each object is one file at `root/<key>`; `put` writes a temporary file in the same
directory and renames it into place (atomic on POSIX), `exclusive` uses `link`, which
fails if the name is taken, so two writers cannot both win. File work runs in a thread:
the event loop never waits on the disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from cronhive.blobs.base import (
    BlobExists,
    BlobInfo,
    BlobNotFound,
    BlobStore,
    BlobUnavailable,
    Data,
    check_key,
)

_PART = ".part-"  # temporary files; never listed


class LocalBlobs(BlobStore):
    kind = "local"
    shared = False

    def __init__(self, root: Path) -> None:
        self.root = root

    def describe(self) -> str:
        return f"local directory {self.root}"

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    async def put(self, key: str, data: Data, *, exclusive: bool = False) -> BlobInfo:
        path = self._path(key)
        try:
            await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True, mode=0o700)
            fd, tmp = await asyncio.to_thread(
                tempfile.mkstemp, dir=path.parent, prefix=_PART + path.name + "-"
            )
        except OSError as exc:
            raise BlobUnavailable(f"blob directory {self.root}: {exc}") from exc
        size = 0
        try:
            with os.fdopen(fd, "wb") as out:
                if isinstance(data, bytes):
                    await asyncio.to_thread(out.write, data)
                    size = len(data)
                else:
                    async for piece in data:
                        await asyncio.to_thread(out.write, piece)
                        size += len(piece)
                await asyncio.to_thread(out.flush)
                await asyncio.to_thread(os.fsync, out.fileno())
            if exclusive:
                await asyncio.to_thread(os.link, tmp, path)
            else:
                await asyncio.to_thread(os.replace, tmp, path)
        except FileExistsError:
            raise BlobExists(f"blob {key} exists") from None
        except OSError as exc:
            raise BlobUnavailable(f"blob directory {self.root}: {exc}") from exc
        finally:
            await asyncio.to_thread(_unlink, tmp)  # gone already after a replace
        return BlobInfo(key=key, size=size)

    async def get(self, key: str, start: int = 0, end: int | None = None) -> bytes:
        path = self._path(key)
        return await asyncio.to_thread(_read, path, key, start, end)

    async def stat(self, key: str) -> BlobInfo:
        path = self._path(key)
        try:
            st = await asyncio.to_thread(path.stat)
        except FileNotFoundError:
            raise BlobNotFound(f"no blob {key}") from None
        except OSError as exc:
            raise BlobUnavailable(f"blob {key}: {exc}") from exc
        return BlobInfo(key=key, size=st.st_size)

    async def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            await asyncio.to_thread(_unlink, str(path))
        except OSError as exc:
            raise BlobUnavailable(f"blob {key}: {exc}") from exc

    async def list(self, prefix: str) -> AsyncIterator[BlobInfo]:
        base = self._path(prefix)
        found = await asyncio.to_thread(_walk, self.root, base)
        for info in found:
            yield info


def _unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _read(path: Path, key: str, start: int, end: int | None) -> bytes:
    try:
        with path.open("rb") as f:
            f.seek(start)
            return f.read() if end is None else f.read(max(0, end - start))
    except (FileNotFoundError, IsADirectoryError):
        raise BlobNotFound(f"no blob {key}") from None
    except OSError as exc:
        raise BlobUnavailable(f"blob {key}: {exc}") from exc


def _walk(root: Path, base: Path) -> list[BlobInfo]:
    out: list[BlobInfo] = []
    if base.is_file():
        out.append(BlobInfo(key=base.relative_to(root).as_posix(), size=base.stat().st_size))
    if not base.is_dir():
        return out
    for folder, _dirs, files in os.walk(base):
        for name in files:
            if name.startswith(_PART):
                continue
            path = Path(folder, name)
            out.append(BlobInfo(key=path.relative_to(root).as_posix(), size=path.stat().st_size))
    return out
