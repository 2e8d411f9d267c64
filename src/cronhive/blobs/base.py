"""The blob store seam: named byte objects (script bodies, archived output).

A `BlobStore` holds immutable-by-convention objects under string keys (`/`-separated,
no leading `/`, no `..`). The contract, which `tests/blobs/test_blobs_contract.py`
checks on every backend:

- `put(key, data)` stores the whole object atomically: a reader sees either the old
  object, nothing, or every byte of the new one, never a part (local: a temporary file
  renamed into place; S3: one PUT, or a multipart upload that only appears when it is
  completed). `data` is bytes or an async iterable of bytes (streamed, for large
  objects). With `exclusive=True` it raises `BlobExists` if the key is taken (and
  leaves the stored object as it was). Returns the stored object's `BlobInfo`.
- `get(key, start=0, end=None)` returns bytes `[start, end)` of the object (`end`
  None: to its end; a range past the end is cut at the end, as in Python slicing).
  Raises `BlobNotFound`.
- `stat(key)` returns `BlobInfo` (key and size). Raises `BlobNotFound`.
- `delete(key)` removes the object; deleting a missing key is not an error.
- `list(prefix)` yields `BlobInfo` of every object whose key starts with `prefix`
  followed by `/` (or equals it), in no promised order.

Every method raises `BlobUnavailable` when the backend cannot be reached or answers
with an error it should not (a stopped S3 server, a full disk); callers retry those.
Bad keys raise `InvalidInput`. Backends come from the node's configuration only
(`cronhive.blobs.open_blobs`), never from jobs or API calls.
"""

from __future__ import annotations

import abc
import re
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass

from cronhive.errors import CronhiveError, InvalidInput

Data = bytes | AsyncIterable[bytes]

_KEY = re.compile(r"[A-Za-z0-9_.=-]+(/[A-Za-z0-9_.=-]+)*")


class BlobError(CronhiveError):
    """A blob store operation failed."""


class BlobNotFound(BlobError, LookupError):
    """No object under that key."""


class BlobExists(BlobError):
    """`put(..., exclusive=True)` of a key that is taken."""


class BlobUnavailable(BlobError):
    """The backend could not be reached or failed; the operation may be retried."""


@dataclass(frozen=True, kw_only=True)
class BlobInfo:
    key: str
    size: int


def check_key(key: str) -> str:
    """`key` if it is a valid blob key, else `InvalidInput`."""
    if not _KEY.fullmatch(key) or any(part in (".", "..") for part in key.split("/")):
        raise InvalidInput(f"bad blob key {key!r}", field="key")
    return key


class BlobStore(abc.ABC):
    """See the module docstring for the contract."""

    #: "local" or "s3", for logs and messages.
    kind: str
    #: Whether nodes on other hosts read the same objects (S3: yes; a local dir: no).
    shared: bool

    @abc.abstractmethod
    async def put(self, key: str, data: Data, *, exclusive: bool = False) -> BlobInfo: ...

    @abc.abstractmethod
    async def get(self, key: str, start: int = 0, end: int | None = None) -> bytes: ...

    @abc.abstractmethod
    async def stat(self, key: str) -> BlobInfo: ...

    @abc.abstractmethod
    async def delete(self, key: str) -> None: ...

    @abc.abstractmethod
    def list(self, prefix: str) -> AsyncIterator[BlobInfo]: ...

    async def close(self) -> None:  # noqa: B027 - optional, not abstract
        """Releases what the backend holds (nothing, by default)."""

    def describe(self) -> str:
        """Where the objects live, for the log (never a secret)."""
        return self.kind
