"""The node's pipe to its supervisor (engine/watchdog.py, engine/_supervisor.py): three
writes per run, and what the supervisor holds for a run is gone once the run is."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from cronhive.engine._supervisor import Supervisor
from cronhive.engine.watchdog import Watchdog
from cronhive.model import Outcome, RunState


@pytest.fixture
def piped() -> Iterator[tuple[Watchdog, int]]:
    """A Watchdog writing into a real pipe whose other end this test reads."""
    r, w = os.pipe()
    os.set_blocking(r, False)
    guard, stdin = Watchdog(supervised=False), os.fdopen(w, "wb", buffering=0)
    guard._proc = SimpleNamespace(stdin=stdin)  # type: ignore[assignment]
    yield guard, r
    guard._proc = None
    stdin.close()
    os.close(r)


def written(r: int) -> list[str]:
    """The lines of the one write since the last call ([] if nothing was written)."""
    try:
        return os.read(r, 65536).decode().splitlines()
    except BlockingIOError:
        return []


def test_a_run_costs_three_writes_and_its_done_rides_on_the_next(
    piped: tuple[Watchdog, int],
) -> None:
    guard, r = piped
    run, pgid = uuid.uuid4(), 4242
    outcome = Outcome(state=RunState.SUCCEEDED, exit_code=0, finished_at=datetime.now(UTC))
    guard.add(pgid, run)
    assert written(r) == [f"add {pgid} {run}"]
    guard.reaped(pgid, run, RunState.SUCCEEDED, 0, None)
    assert [x.split(" ", 3)[:3] for x in written(r)] == [["end", str(pgid), str(run)]]
    guard.ended(pgid, run, outcome)
    assert [x.split(" ", 3)[:3] for x in written(r)] == [["end", str(pgid), str(run)]]
    guard.settled(run)
    assert written(r) == []  # no write of its own...
    guard.hold_until(time.monotonic() + 10)
    [done, deadline] = written(r)  # ...but with the next one, first
    assert done == f"done {run}" and deadline.startswith("deadline ")


def test_pending_dones_are_written_on_their_own_when_many(
    piped: tuple[Watchdog, int],
) -> None:
    guard, r = piped
    runs = [uuid.uuid4() for _ in range(64)]
    for run in runs[:-1]:
        guard.settled(run)
    assert written(r) == []
    guard.settled(runs[-1])
    assert written(r) == [f"done {run}" for run in runs]


@pytest.fixture
def supervisor() -> Iterator[Supervisor]:
    r, w = os.pipe()
    sup = Supervisor(r)
    yield sup
    sup.writer.close(within=5.0)
    os.close(r)
    os.close(w)


def child() -> subprocess.Popen[bytes]:
    return subprocess.Popen(["sleep", "60"], start_new_session=True)


def test_a_settled_run_leaves_nothing_held(supervisor: Supervisor) -> None:
    proc, run = child(), str(uuid.uuid4())
    try:
        supervisor._line(f"add {proc.pid} {run}")
        supervisor._line(f"stopping {run} stopped")
        supervisor._line(f'end {proc.pid} {run} {{"state": "stopped"}}')
        assert supervisor.runs[run].end == {"state": "stopped"} and not supervisor.leaders
        supervisor._line(f"done {run}")
        assert supervisor.runs == {} and supervisor.leaders == {}
    finally:
        proc.kill()
        proc.wait()


def test_a_run_killed_at_the_deadline_leaves_nothing_held(supervisor: Supervisor) -> None:
    proc, run = child(), str(uuid.uuid4())
    supervisor._line(f"add {proc.pid} {run}")
    supervisor._line("add 999999")  # a group without a run
    supervisor._fence("lease deadline passed")
    assert proc.wait(10) == -9
    assert supervisor.runs == {} and supervisor.leaders == {}
    supervisor._line(f"del {proc.pid}")  # the node, thawed, gives it up: nothing to drop
    assert supervisor.runs == {}


def test_an_end_waiting_for_its_commit_survives_the_kill_and_pid_reuse(
    supervisor: Supervisor,
) -> None:
    first, second, proc = str(uuid.uuid4()), str(uuid.uuid4()), child()
    try:
        supervisor._line(f"add {proc.pid} {first}")
        supervisor._line(f'end {proc.pid} {first} {{"state": "succeeded", "exit_code": 0}}')
        supervisor._line(f"add {proc.pid} {second}")  # the same pid, reused by a new run
        supervisor._line(f"del {proc.pid}")  # the new run, given up
        assert list(supervisor.runs) == [first]
        supervisor._kill("lease deadline passed")  # an ended run's group is not guarded
        assert list(supervisor.runs) == [first] and proc.poll() is None
        supervisor._line(f"done {first}")
        assert supervisor.runs == {}
    finally:
        proc.kill()
        proc.wait()


def test_stopping_a_run_not_held_holds_nothing(supervisor: Supervisor) -> None:
    supervisor._line(f"stopping {uuid.uuid4()} stopped")  # a SQL run: no process group
    assert supervisor.runs == {}
