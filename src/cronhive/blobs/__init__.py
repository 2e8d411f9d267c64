"""Blob storage: script bodies and archived run output (see `base` for the contract).

    BlobStore            the interface; the core imports only this
    ├── LocalBlobs       a directory of this node (the embedded default)
    └── S3Blobs          S3-compatible object storage (cronhive.blobs.s3, obstore)

`open_blobs` builds the one a node's configuration names.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from cronhive.blobs.base import (
    BlobError,
    BlobExists,
    BlobInfo,
    BlobNotFound,
    BlobStore,
    BlobUnavailable,
    check_key,
)
from cronhive.blobs.local import LocalBlobs

if TYPE_CHECKING:
    from cronhive.blobs.s3 import S3Settings

__all__ = [
    "BlobError",
    "BlobExists",
    "BlobInfo",
    "BlobNotFound",
    "BlobStore",
    "BlobUnavailable",
    "LocalBlobs",
    "check_key",
    "open_blobs",
]


def open_blobs(kind: str, *, local_dir: Path, s3: S3Settings | None) -> BlobStore:
    """The backend named by `kind` ("local" or "s3"); S3 needs `s3`."""
    if kind == "s3":
        if s3 is None:
            raise ValueError("blobs = s3 needs s3 settings")
        from cronhive.blobs.s3 import S3Blobs  # obstore only where S3 is used

        return S3Blobs(s3)
    return LocalBlobs(local_dir)
