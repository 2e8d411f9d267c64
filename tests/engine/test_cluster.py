"""Nodes as separate OS processes sharing one real PostgreSQL: exactly once, failover, fencing."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from enginekit import create_job, executions_of, job_spec, node_logs, spawn_node, wait_for

from cronhive.engine.executions import triggered
from cronhive.model import Execution, RunState
from cronhive.store import Store, open_store

LEASE_TTL = 5.0


@pytest.fixture
async def pg_store(pg_database: Callable[[str | None], str]) -> AsyncIterator[Store]:
    store = await open_store(pg_database(None))
    yield store
    await store.close()


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for p in procs:
        if p.poll() is None:
            os.kill(p.pid, signal.SIGCONT)
            p.kill()
        p.wait(10)


async def wait_nodes(store: Store, n: int) -> None:
    async def joined() -> bool:
        return len(await store.list_nodes(now=datetime.now(UTC))) >= n

    await wait_for(joined, within=30)


def _url(store: Store) -> str:
    url: str = store.url  # type: ignore[attr-defined]
    return url


@pytest.mark.slow
@pytest.mark.timeout(330)
async def test_three_nodes_fire_every_slot_exactly_once(
    pg_store: Store, tmp_path: Path, nodes: list[subprocess.Popen[bytes]]
) -> None:
    """200 jobs firing every second for 60 s on 3 nodes: each slot has exactly one
    execution (run or recorded as skipped), none missing, none doubled."""
    now = datetime.now(UTC)
    jobs = [
        await create_job(pg_store, job_spec(("true",), schedule="every 1s"), now)
        for _ in range(200)
    ]
    # 200 runs a second are about firing, not isolation: sandboxed (bash + bwrap + perl,
    # ~10 ms of CPU each, see docs/benchmarks.md) they would saturate a 2-core CI machine.
    for i in range(3):
        nodes.append(
            spawn_node(
                _url(pg_store), tmp_path, f"n{i}", capacity=32, extra=("--isolation", "none")
            )
        )
    await wait_nodes(pg_store, 3)
    await asyncio.sleep(60)
    end = datetime.now(UTC)

    behind: list[datetime | None] = []

    async def caught_up() -> bool:
        # Liveness, not speed: a loaded machine may lag, but every slot up to `end`
        # gets its record (run, or skipped by the misfire policy) eventually.
        due = await pg_store.list_jobs(visible_to=None, limit=1000)
        behind[:] = [j.next_fire_at for j in due if j.next_fire_at is None or j.next_fire_at <= end]
        return not behind

    try:
        await wait_for(caught_up, within=120)
    except AssertionError as exc:
        # Whether the cluster is slow (all a little behind) or a job is stuck (one far).
        lags = sorted((end - at).total_seconds() for at in behind if at is not None)
        raise AssertionError(
            f"{exc}: {len(behind)} jobs not past the window's end, behind by {lags[:3]} ..."
            f" {lags[-3:]} s\n{node_logs(tmp_path)}"
        ) from None
    for p in nodes:
        p.send_signal(signal.SIGTERM)
    for p in nodes:
        assert p.wait(60) == 0, node_logs(tmp_path)

    rows = await executions_of(pg_store)
    by_slot = Counter((r.job_id, r.scheduled_for, r.attempt) for r in rows)
    assert max(by_slot.values()) == 1  # (the unique key would have refused a double)
    first_slot = {j.id: j.next_fire_at for j in jobs}
    fired_on: Counter[str] = Counter()
    for job in jobs:
        slots = sorted(r.scheduled_for for r in rows if r.job_id == job.id and r.attempt == 1)
        assert slots, node_logs(tmp_path)
        # Every second from the job's first slot to its last one, without a gap.
        first = first_slot[job.id]
        assert first is not None and slots[0] == first
        expected = [first + timedelta(seconds=k) for k in range(len(slots))]
        assert slots == expected, f"gap or double in {job.name}"
        assert slots[-1] >= end - timedelta(seconds=1)  # fired up to `end` (see caught_up)
    for r in rows:
        if r.node_id is not None:
            fired_on[str(r.node_id)] += 1
    assert len(rows) >= 200 * 55
    assert all(
        r.state in (RunState.SUCCEEDED, RunState.SKIPPED, RunState.STOPPED, RunState.QUEUED)
        for r in rows
    ), Counter(r.state for r in rows)
    # The work was shared: every node ran some of it.
    assert len(fired_on) == 3, fired_on


async def _running(store: Store, job_id: object) -> list[Execution]:
    rows = await executions_of(store, job_id)  # type: ignore[arg-type]
    return [r for r in rows if r.state is RunState.RUNNING]


@pytest.mark.slow
async def test_sigkilled_node_run_is_lost_and_retried_on_another_node(
    pg_store: Store, tmp_path: Path, nodes: list[subprocess.Popen[bytes]]
) -> None:
    now = datetime.now(UTC)
    job = await create_job(pg_store, job_spec(("sleep", "60"), retries=1, retry_delay=0.05), now)
    nodes.append(spawn_node(_url(pg_store), tmp_path, "a"))
    nodes.append(spawn_node(_url(pg_store), tmp_path, "b"))
    await wait_nodes(pg_store, 2)
    first = await pg_store.enqueue(triggered(job, datetime.now(UTC)))
    await wait_for(lambda: _has_running(pg_store, job.id))
    [running] = await _running(pg_store, job.id)
    assert running.id == first.id
    by_id = {n.id: n.name for n in await pg_store.list_nodes(now=datetime.now(UTC))}
    victim = nodes[0] if by_id[running.node_id] == "a" else nodes[1]  # type: ignore[index]
    killed_at = asyncio.get_running_loop().time()
    victim.kill()

    async def retried() -> bool:
        rows = await executions_of(pg_store, job.id)
        return any(r.attempt == 2 and r.state is RunState.RUNNING for r in rows)

    await wait_for(retried, within=LEASE_TTL + 10, every=0.05)
    failover = asyncio.get_running_loop().time() - killed_at
    rows = {r.attempt: r for r in await executions_of(pg_store, job.id)}
    assert rows[1].state is RunState.LOST and "lease" in (rows[1].reason or "")
    assert rows[2].node_id not in (None, running.node_id)
    assert failover <= LEASE_TTL + 2, f"failover took {failover:.1f}s"


async def _has_running(store: Store, job_id: object) -> bool:
    return bool(await _running(store, job_id))


@pytest.mark.slow
async def test_frozen_node_is_fenced_and_cannot_overwrite_the_new_attempt(
    pg_store: Store, tmp_path: Path, nodes: list[subprocess.Popen[bytes]]
) -> None:
    pids = tmp_path / "pids"
    pids.mkdir()
    script = f"echo $$ > {pids}/$CRONHIVE_RUN_ID; exec sleep 60"
    now = datetime.now(UTC)
    job = await create_job(pg_store, job_spec(("sh", "-c", script), retries=1), now)
    # The test reads the run's PID and a file it writes from outside, which a sandboxed
    # run (own PID namespace, own /tmp) does not share: these nodes run them unisolated.
    unisolated = ("--isolation", "none")
    nodes.append(spawn_node(_url(pg_store), tmp_path, "a", extra=unisolated))
    nodes.append(spawn_node(_url(pg_store), tmp_path, "b", extra=unisolated))
    await wait_nodes(pg_store, 2)
    await pg_store.enqueue(triggered(job, datetime.now(UTC)))
    await wait_for(lambda: _has_running(pg_store, job.id))
    [old] = await _running(pg_store, job.id)
    await wait_for(lambda: _exists(pids / str(old.id)))
    old_pid = int((pids / str(old.id)).read_text())
    by_id = {n.id: n.name for n in await pg_store.list_nodes(now=datetime.now(UTC))}
    frozen = nodes[0] if by_id[old.node_id] == "a" else nodes[1]  # type: ignore[index]
    os.kill(frozen.pid, signal.SIGSTOP)

    async def retried() -> bool:
        rows = await executions_of(pg_store, job.id)
        return any(r.attempt == 2 and r.state is RunState.RUNNING for r in rows)

    await wait_for(retried, within=LEASE_TTL + 10)
    os.kill(frozen.pid, signal.SIGCONT)

    async def old_process_gone() -> bool:
        try:
            os.kill(old_pid, 0)
        except ProcessLookupError:
            return True
        return False

    # The node notices its lease is gone at its next renewal and stops the old copy.
    await wait_for(old_process_gone, within=LEASE_TTL + 5)
    await asyncio.sleep(1.0)  # give the fenced node every chance to (wrongly) write
    rows = {r.attempt: r for r in await executions_of(pg_store, job.id)}
    assert rows[1].state is RunState.LOST, rows[1]
    assert rows[1].finished_at is not None and rows[1].exit_code is None
    assert rows[2].state is RunState.RUNNING and rows[2].node_id != old.node_id
    assert len(rows) == 2, node_logs(tmp_path)


async def _exists(path: Path) -> bool:
    return path.exists()


def test_a_second_node_on_the_same_sqlite_file_is_refused(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'one.db'}"
    first = spawn_node(db, tmp_path, "first")
    try:
        deadline = time.monotonic() + 20
        while "joined" not in (tmp_path / "first.log").read_text():
            assert first.poll() is None and time.monotonic() < deadline, node_logs(tmp_path)
            time.sleep(0.1)
        second = spawn_node(db, tmp_path, "second")
        assert second.wait(20) == 1
        log = (tmp_path / "second.log").read_text()
        assert "in use by node first" in log and "one node per database file" in log
        assert "Traceback" not in log
    finally:
        first.terminate()
        assert first.wait(20) == 0
