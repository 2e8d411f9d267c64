"""Helpers for engine tests: jobs, ad-hoc runs and nodes built from real parts."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

from cronhive.engine import executions as new
from cronhive.engine.clock import Clock
from cronhive.engine.node import NodeConfig, NodeProcess
from cronhive.model import (
    Concurrency,
    Execution,
    Job,
    JobSpec,
    Misfire,
    RetryPolicy,
    RunSpec,
)
from cronhive.runner import Sandbox
from cronhive.schedule import parse_schedule
from cronhive.store import Store, open_store


def job_spec(
    command: tuple[str, ...],
    *,
    name: str | None = None,
    schedule: str | None = None,
    timeout: float | None = None,
    retries: int = 0,
    retry_delay: float = 0.05,
    concurrency: Concurrency = Concurrency.ALLOW,
    misfire: Misfire = Misfire.ONCE,
    tags: frozenset[str] = frozenset(),
) -> JobSpec:
    sched = None
    if schedule is not None:
        kind = "interval" if schedule.startswith("every") else "cron"
        sched = parse_schedule(kind, schedule)
    return JobSpec(
        name=name or f"job-{uuid.uuid4().hex[:8]}",
        owner="user:alice",
        run=RunSpec(command=command, timeout=timeout, target_tags=tags),
        schedule=sched,
        retry=RetryPolicy(max_retries=retries, delay=retry_delay, backoff=2.0),
        concurrency=concurrency,
        misfire=misfire,
    )


def adhoc(command: tuple[str, ...], now: datetime, **run: Any) -> Execution:
    return new.adhoc("user:alice", RunSpec(command=command, **run), now)


async def create_job(store: Store, spec: JobSpec, now: datetime) -> Job:
    first = spec.schedule.next_after(now) if spec.schedule else None
    return await store.create_job(spec, next_fire_at=first, created_by="alice", now=now)


@contextlib.asynccontextmanager
async def running_node(
    store: Store,
    tmp_path: Path,
    *,
    clock: Clock | None = None,
    name: str = "n1",
    capacity: int = 8,
    tags: frozenset[str] = frozenset(),
    lease_ttl: float | None = None,
    grace: float = 2.0,
    drain_grace: float = 2.0,
    keeper: bool = False,
    sandbox: Sandbox | None = None,
) -> AsyncIterator[NodeProcess]:
    """A node on `store`; `keeper=True` renews its lease from a thread with a connection
    of its own, as `cronhive server` does (needs the real clock)."""
    url = getattr(store, "url", None)
    assert not keeper or (clock is None and url), "the keeper needs the database clock"
    node = NodeProcess(
        store,
        NodeConfig(
            name=name,
            spool_dir=tmp_path / f"spool-{name}",
            tags=tags,
            capacity=capacity,
            # A manual clock jumps minutes at a time: a short lease would lapse on each.
            lease_ttl=lease_ttl or (5.0 if clock is None else 24 * 3600.0),
            grace=grace,
            drain_grace=drain_grace,
            lease_store=partial(open_store, url) if keeper and url else None,
            sandbox=sandbox,
        ),
        clock,
    )
    task = asyncio.create_task(node.run())
    await asyncio.wait_for(node.ready.wait(), 10)
    try:
        yield node
    finally:
        node.shutdown()
        await asyncio.wait_for(task, 30)


async def wait_for(
    check: Callable[[], Awaitable[bool]], *, within: float = 15.0, every: float = 0.05
) -> None:
    """Polls `check` until true; fails the test after `within` seconds."""
    deadline = asyncio.get_running_loop().time() + within
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {within}s")
        await asyncio.sleep(every)


async def executions_of(store: Store, job_id: uuid.UUID | None = None) -> list[Execution]:
    return await store.list_executions(visible_to=None, job_id=job_id, limit=1_000_000)


async def terminal(store: Store, execution_id: uuid.UUID) -> bool:
    e = await store.get_execution(execution_id, visible_to=None)
    return e.state.terminal


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def spawn_node(
    db_url: str, tmp_path: Path, name: str, *, capacity: int = 16, extra: tuple[str, ...] = ()
) -> subprocess.Popen[bytes]:
    """A node as a separate OS process (`cronhive server`), logging to tmp_path/NAME.log."""
    with open(tmp_path / f"{name}.log", "wb") as log:  # the child keeps its own copy
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cronhive",
                "server",
                "--db",
                db_url,
                "--data-dir",
                str(tmp_path / name),
                "--name",
                name,
                "--listen",
                f"127.0.0.1:{free_port()}",
                "--web",
                f"127.0.0.1:{free_port()}",
                "--capacity",
                str(capacity),
                *extra,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def node_logs(tmp_path: Path) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in tmp_path.glob("*.log"))
