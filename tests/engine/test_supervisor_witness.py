"""The supervisor vouches for ends the node could not record (engine/_supervisor.py).

This test process plays a frozen node: it starts real children and registers them with a
real supervisor, but never reaps them nor records their ends. What the supervisor writes
into the real database, and what the reaper then makes of it, is checked on both backends.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
import sqlalchemy as sa
from enginekit import adhoc

from cronhive.engine.watchdog import Watchdog
from cronhive.model import Execution, Outcome, OutputChunk, RunState, Stream
from cronhive.store import Finish, Store, open_store
from cronhive.store.schema import executions

TTL = 30.0  # the lease in the database: long, so the lease holds while the test looks


def no_retry(_: Execution) -> datetime | None:
    return None


@pytest.fixture(params=["sqlite", "postgres"])
async def backend(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[Store, dict[str, str]]]:
    if request.param == "sqlite":
        path = tmp_path / "cronhive.db"
        url, target = f"sqlite:///{path}", {"sqlite": str(path)}
    else:
        factory: Callable[[str | None], str] = request.getfixturevalue("pg_database")
        url = factory(None)
        target = {"postgresql": url}
    store = await open_store(url)
    yield store, target
    await store.close()


@pytest.fixture
def watchdog() -> Iterator[Watchdog]:
    guard = Watchdog()
    yield guard
    guard.close()


async def running_run(
    store: Store, command: str
) -> tuple[UUID, Execution, subprocess.Popen[bytes]]:
    """A node with one run claimed, and that run's real process (never reaped here)."""
    now = datetime.now(UTC)
    node = await store.register_node(name="n1", tags=frozenset(), capacity=4, ttl=TTL, now=now)
    await store.enqueue(adhoc(("sh", "-c", command), now))
    [run] = await store.claim(node.id, frozenset(), 1, now)
    child = subprocess.Popen(["sh", "-c", command], start_new_session=True)
    return node.id, run, child


async def witness_of(store: Store, run: UUID, within: float = 20.0) -> dict[str, Any] | None:
    """The run's witness once written (None if none came within `within` seconds)."""
    give_up = time.monotonic() + within
    while True:
        got = await store._read(  # type: ignore[attr-defined]
            sa.select(executions.c.witness).where(executions.c.id == run)
        )
        if got[0]["witness"] is not None or time.monotonic() > give_up:
            return got[0]["witness"]  # type: ignore[no-any-return]
        await asyncio.sleep(0.05)


def arm(guard: Watchdog, target: dict[str, str], node_id: UUID, *, left: float) -> None:
    """The node's lease deadline `left` seconds away; under a third of the TTL left
    means the node is late, so open ends are written at once."""
    guard.record_to(target, node_id, ttl=4 * left + 1)
    guard.hold_until(time.monotonic() + left)


async def reap_after_lease(store: Store) -> list[Execution]:
    return await store.reap(now=datetime.now(UTC) + timedelta(seconds=TTL + 1), retry=no_retry)


async def test_a_run_that_ends_while_its_node_is_frozen_is_recorded_not_lost(
    backend: tuple[Store, dict[str, str]], watchdog: Watchdog
) -> None:
    store, target = backend
    node_id, run, child = await running_run(store, "exit 7")
    arm(watchdog, target, node_id, left=60)
    watchdog.add(child.pid, run.id)
    witness = await witness_of(store, run.id)
    assert witness == {"state": "failed", "exit_code": 7, "seen": "supervisor"}
    assert await reap_after_lease(store) == []  # nothing lost
    ended = await store.get_execution(run.id, visible_to=None)
    assert (ended.state, ended.exit_code, ended.attempt) == (RunState.FAILED, 7, 1)
    assert ended.reason is not None and "its supervisor kept the exit status" in ended.reason
    assert await store.list_executions(visible_to=None, states=[RunState.QUEUED]) == []
    assert child.wait() == 7  # the zombie was the supervisor's only source


async def test_an_end_the_node_had_but_never_committed_is_recorded_with_what_is_missing(
    backend: tuple[Store, dict[str, str]], watchdog: Watchdog
) -> None:
    store, target = backend
    node_id, run, child = await running_run(store, "exit 0")
    assert child.wait() == 0  # the node reaped it and knows its end...
    await store.append_output(
        run.id,
        node_id=node_id,
        chunks=[
            OutputChunk(execution_id=run.id, stream=Stream.STDOUT, offset=0, seq=0, data=b"half")
        ],
    )
    arm(watchdog, target, node_id, left=60)
    watchdog.add(child.pid, run.id)
    end = Outcome(
        state=RunState.SUCCEEDED, exit_code=0, finished_at=datetime.now(UTC), stdout_bytes=10
    )
    watchdog.ended(child.pid, run.id, end)  # ...and then freezes before its commit
    witness = await witness_of(store, run.id)
    assert witness is not None and (witness["state"], witness["seen"]) == ("succeeded", "node")
    assert await reap_after_lease(store) == []
    ended = await store.get_execution(run.id, visible_to=None)
    assert (ended.state, ended.exit_code, ended.stdout_bytes) == (RunState.SUCCEEDED, 0, 4)
    assert ended.reason is not None and "6 byte(s) of output were not stored" in ended.reason


async def test_a_committed_end_is_not_vouched_for(
    backend: tuple[Store, dict[str, str]], watchdog: Watchdog
) -> None:
    store, target = backend
    node_id, run, child = await running_run(store, "exit 0")
    child.wait()
    watchdog.add(child.pid, run.id)
    end = Outcome(state=RunState.SUCCEEDED, exit_code=0, finished_at=datetime.now(UTC))
    watchdog.ended(child.pid, run.id, end)
    await store.finish_many(
        [Finish(execution_id=run.id, outcome=end)], node_id=node_id, retry=no_retry
    )
    watchdog.settled(run.id)
    arm(watchdog, target, node_id, left=60)
    assert await witness_of(store, run.id, within=1.5) is None


async def test_a_run_killed_at_the_deadline_is_lost_not_vouched_for(
    backend: tuple[Store, dict[str, str]], watchdog: Watchdog
) -> None:
    store, target = backend
    node_id, run, child = await running_run(store, "sleep 60")
    watchdog.add(child.pid, run.id)
    arm(watchdog, target, node_id, left=0.5)
    assert await asyncio.to_thread(child.wait, 20) == -9  # the fencing kill
    assert await witness_of(store, run.id, within=1.5) is None
    [lost] = await reap_after_lease(store)
    assert (lost.id, lost.state) == (run.id, RunState.LOST)


async def test_no_end_is_written_once_the_lease_has_lapsed_in_the_database(
    backend: tuple[Store, dict[str, str]], watchdog: Watchdog
) -> None:
    store, target = backend
    node_id, run, child = await running_run(store, "exit 3")
    # The database says the lease is over, whatever the node's own clock believes.
    await store.reap(now=datetime.now(UTC) + timedelta(seconds=TTL + 1), retry=no_retry)
    arm(watchdog, target, node_id, left=60)
    watchdog.add(child.pid, run.id)
    assert await witness_of(store, run.id, within=1.5) is None
    assert (await store.get_execution(run.id, visible_to=None)).state is RunState.LOST
    child.wait()


async def test_an_exit_status_told_at_reaping_is_kept_though_the_node_froze_before_its_end(
    backend: tuple[Store, dict[str, str]], watchdog: Watchdog
) -> None:
    store, target = backend
    node_id, run, child = await running_run(store, "exit 4")
    watchdog.add(child.pid, run.id)
    assert child.wait() == 4  # reaped by the node, whose output drain then froze
    watchdog.reaped(child.pid, run.id, RunState.FAILED, 4, None)
    arm(watchdog, target, node_id, left=60)
    witness = await witness_of(store, run.id)
    assert witness == {"state": "failed", "exit_code": 4, "signal": None, "seen": "exit"}
    assert await reap_after_lease(store) == []
    ended = await store.get_execution(run.id, visible_to=None)
    assert (ended.state, ended.exit_code) == (RunState.FAILED, 4)


# A node in a process of its own, so that the test can SIGKILL it: it registers a child
# that dies with it (as the sandbox does, bwrap --die-with-parent) and then just waits.
# Its parent adopts orphans and reaps nothing, so the dead child stays a readable zombie.
_DYING_NODE = """
import ctypes, json, os, signal, subprocess, sys, time, uuid
from cronhive.engine.watchdog import Watchdog
target, node, run = json.loads(sys.argv[1])
guard = Watchdog()
libc = ctypes.CDLL(None, use_errno=True)
# The child also holds the supervisor's pipe: the pipe's end and the leader's exit then
# reach the supervisor together, the order in which a leader's exit is seen first.
child = subprocess.Popen(
    ["sleep", "60"],
    start_new_session=True,
    preexec_fn=lambda: libc.prctl(1, signal.SIGKILL),  # PR_SET_PDEATHSIG
    pass_fds=(guard._proc.stdin.fileno(),),
)
guard.record_to(target, uuid.UUID(node), ttl=241)
guard.hold_until(time.monotonic() + 60)
guard.add(child.pid, uuid.UUID(run))
print(os.getpid(), child.pid, flush=True)
time.sleep(60)
"""
_ADOPTER = """
import ctypes, subprocess, sys, time
ctypes.CDLL(None).prctl(36, 1)  # PR_SET_CHILD_SUBREAPER
subprocess.Popen([sys.executable, "-c", sys.argv[1], sys.argv[2]])
time.sleep(30)
"""


async def test_leaders_that_die_with_their_node_are_lost_not_vouched_for(
    backend: tuple[Store, dict[str, str]],
) -> None:
    store, target = backend
    now = datetime.now(UTC)
    node = await store.register_node(name="n1", tags=frozenset(), capacity=4, ttl=TTL, now=now)
    await store.enqueue(adhoc(("sleep", "60"), now))
    [run] = await store.claim(node.id, frozenset(), 1, now)
    args = json.dumps([target, str(node.id), str(run.id)])
    adopter = subprocess.Popen(
        [sys.executable, "-c", _ADOPTER, _DYING_NODE, args], stdout=subprocess.PIPE
    )
    try:
        assert adopter.stdout is not None
        line = await asyncio.to_thread(adopter.stdout.readline)
        node_pid, child = (int(x) for x in line.split())
        await asyncio.sleep(0.5)  # the supervisor has read every line
        os.kill(node_pid, signal.SIGKILL)
        await asyncio.sleep(1.0)  # the child died with it and is an unreaped zombie
        assert await witness_of(store, run.id, within=2.0) is None
        [lost] = await reap_after_lease(store)
        assert (lost.id, lost.state) == (run.id, RunState.LOST)
    finally:
        adopter.kill()
        adopter.wait()
        if adopter.stdout is not None:
            adopter.stdout.close()
    assert child
