"""S3-compatible object storage (AWS S3, Ceph RGW, MinIO, ...) through obstore.

Why obstore (and not aiobotocore): it is a native async client (the Rust
`object_store` crate, which also backs Apache Arrow and DataFusion), ships complete type
hints, installs as one wheel with no further dependencies, streams multipart uploads from
an async iterator, and maps "not found" and "already exists" (conditional PUT with
`If-None-Match`) to their own exceptions. aiobotocore would add botocore, aiohttp and a
separate stubs package for the same five calls.

Credentials come from the node's configuration or the usual AWS environment variables
(`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`), never from a job.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import obstore
from obstore.exceptions import AlreadyExistsError, NotFoundError, PreconditionError
from obstore.store import S3Store

from cronhive.blobs.base import (
    BlobExists,
    BlobInfo,
    BlobNotFound,
    BlobStore,
    BlobUnavailable,
    Data,
    check_key,
)


@dataclass(frozen=True, kw_only=True)
class S3Settings:
    bucket: str
    endpoint: str | None = None  # None: AWS itself (from the region)
    prefix: str = ""
    region: str | None = None
    access_key_id: str | None = None  # None: from the environment
    secret_access_key: str | None = None
    timeout: float = 30.0  # seconds per request
    retries: int = 2  # the client's own retries before we see the error


# obstore raises its NotFoundError, or a plain FileNotFoundError from some calls.
_MISSING = (NotFoundError, FileNotFoundError)
_FAILED = (obstore.exceptions.BaseError, OSError)


class S3Blobs(BlobStore):
    kind = "s3"
    shared = True

    def __init__(self, settings: S3Settings) -> None:
        self.settings = settings
        config: dict[str, Any] = {}
        if settings.endpoint:
            config["endpoint"] = settings.endpoint
            # Path-style requests: what Ceph, MinIO and most self-hosted servers expect.
            config["virtual_hosted_style_request"] = False
        if settings.region:
            config["region"] = settings.region
        if settings.access_key_id:
            config["access_key_id"] = settings.access_key_id
        if settings.secret_access_key:
            config["secret_access_key"] = settings.secret_access_key
        http = bool(settings.endpoint and settings.endpoint.startswith("http://"))
        self._store = S3Store(
            settings.bucket,
            prefix=settings.prefix.strip("/") or None,
            config=config,  # type: ignore[arg-type]
            client_options={
                "allow_http": http,
                "timeout": timedelta(seconds=settings.timeout),
                "connect_timeout": timedelta(seconds=min(5.0, settings.timeout)),
            },
            retry_config={
                "max_retries": settings.retries,
                "retry_timeout": timedelta(seconds=settings.timeout),
            },
        )

    def describe(self) -> str:
        s = self.settings
        where = s.endpoint or "AWS"
        return f"S3 bucket {s.bucket} at {where}" + (f" under {s.prefix}" if s.prefix else "")

    async def put(self, key: str, data: Data, *, exclusive: bool = False) -> BlobInfo:
        check_key(key)
        try:
            if isinstance(data, bytes):
                await obstore.put_async(
                    self._store, key, data, mode="create" if exclusive else "overwrite"
                )
                size = len(data)
            else:
                counted = _Counted(data)
                # A multipart upload appears only once completed: atomic for readers.
                # Conditional creates are single PUTs, so exclusive puts are bytes only.
                if exclusive:
                    raise ValueError("exclusive put takes bytes")
                await obstore.put_async(self._store, key, counted)
                size = counted.size
        except (AlreadyExistsError, PreconditionError):
            raise BlobExists(f"blob {key} exists") from None
        except _FAILED as exc:
            raise BlobUnavailable(f"{self.describe()}: {_short(exc)}") from exc
        return BlobInfo(key=key, size=size)

    async def get(self, key: str, start: int = 0, end: int | None = None) -> bytes:
        check_key(key)
        if end is not None and end <= start:
            return b""
        try:
            if end is None:
                if start == 0:
                    found = await obstore.get_async(self._store, key)
                else:
                    found = await obstore.get_async(
                        self._store, key, options={"range": {"offset": start}}
                    )
                return bytes(await found.bytes_async())
            return bytes(await obstore.get_range_async(self._store, key, start=start, end=end))
        except _MISSING:
            raise BlobNotFound(f"no blob {key}") from None
        except _FAILED as exc:
            if start > 0 and start >= (await self.stat(key)).size:
                return b""  # a range past the end is empty, as for the local backend
            raise BlobUnavailable(f"{self.describe()}: {_short(exc)}") from exc

    async def stat(self, key: str) -> BlobInfo:
        check_key(key)
        try:
            meta = await obstore.head_async(self._store, key)
        except _MISSING:
            raise BlobNotFound(f"no blob {key}") from None
        except _FAILED as exc:
            raise BlobUnavailable(f"{self.describe()}: {_short(exc)}") from exc
        return BlobInfo(key=key, size=meta["size"])

    async def delete(self, key: str) -> None:
        check_key(key)
        try:
            await obstore.delete_async(self._store, key)
        except _MISSING:
            pass
        except _FAILED as exc:
            raise BlobUnavailable(f"{self.describe()}: {_short(exc)}") from exc

    async def list(self, prefix: str) -> AsyncIterator[BlobInfo]:
        check_key(prefix)
        try:
            async for page in obstore.list(self._store, prefix, chunk_size=500):
                for meta in page:
                    yield BlobInfo(key=meta["path"], size=meta["size"])
        except _FAILED as exc:
            raise BlobUnavailable(f"{self.describe()}: {_short(exc)}") from exc


class _Counted:
    """An async iterable that counts the bytes it hands on."""

    def __init__(self, data: Data) -> None:
        assert not isinstance(data, bytes)
        self._data = data
        self.size = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for piece in self._data:
            self.size += len(piece)
            yield piece


def _short(exc: BaseException) -> str:
    """The first line of obstore's (very long) error text."""
    return str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
