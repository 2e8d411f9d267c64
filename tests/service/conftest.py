"""A `Service` over a fresh store of each backend (servicekit.Backend)."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import psycopg
import pytest
from servicekit import Backend

from cronhive.auth import DEFAULT_POLICY
from cronhive.blobs.local import LocalBlobs
from cronhive.engine.clock import SystemClock
from cronhive.engine.hub import Hub
from cronhive.notify import Targets, Webhook
from cronhive.service import Service
from cronhive.store import open_store


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgres-raise", marks=pytest.mark.postgres),
        pytest.param("postgres-terminate", marks=pytest.mark.postgres),
    ]
)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    kind = request.param
    if kind == "sqlite":
        path = tmp_path / "cronhive.db"
        url = f"sqlite:///{path}"

        def sql(statements: list[str]) -> None:
            with sqlite3.connect(path) as conn:
                for s in statements:
                    conn.execute(s)
    else:
        url = request.getfixturevalue("pg_database")(None)

        def sql(statements: list[str]) -> None:
            with psycopg.connect(url, autocommit=True) as conn:
                for s in statements:
                    conn.execute(s)

    store = await open_store(url)
    service = Service(
        store=store,
        clock=SystemClock(),
        hub=Hub(),
        policy=DEFAULT_POLICY,
        blobs=LocalBlobs(tmp_path / "blobs"),
        targets=Targets({"ops": Webhook(name="ops", url="http://127.0.0.1:9/", secret=b"s")}),
    )
    yield Backend(kind=kind, url=url, service=service, sql=sql)
    await store.close()
