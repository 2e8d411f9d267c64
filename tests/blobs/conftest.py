"""Blob store fixtures: a moto S3 server per session and a fresh prefix per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from s3kit import MotoServer, s3_settings

from cronhive.blobs import BlobStore, LocalBlobs
from cronhive.blobs.s3 import S3Blobs


@pytest.fixture(scope="session")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    server = MotoServer(tmp_path_factory.mktemp("moto"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["local", "s3"])
async def blobs(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[BlobStore]:
    """Every backend, one after the other (the contract suite runs on each)."""
    store: BlobStore
    if request.param == "local":
        store = LocalBlobs(tmp_path / "blobs")
    else:
        moto: MotoServer = request.getfixturevalue("moto")
        store = S3Blobs(s3_settings(moto, f"t-{uuid.uuid4().hex[:10]}"))
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
def no_aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("AWS_"):
            monkeypatch.delenv(key)
