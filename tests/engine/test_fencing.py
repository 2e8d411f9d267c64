"""Fencing on one node, with real processes: the supervisor outside the node, runs given
up as lost and retried at once, the database's clock, one capacity counter."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from enginekit import adhoc, create_job, executions_of, job_spec, running_node, wait_for

from cronhive.engine.clock import DatabaseClock
from cronhive.engine.executions import triggered
from cronhive.engine.finisher import Finisher
from cronhive.engine.retry import MAX_LOST_IN_A_ROW, decide_retry
from cronhive.engine.watchdog import Watchdog
from cronhive.model import Execution, Outcome, RetryPolicy, RunState
from cronhive.store import Store
from cronhive.store.schema import nodes

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _group(tmp_path: Path) -> subprocess.Popen[bytes]:
    """A run-like process group: a shell and its child, as the runner starts them."""
    return subprocess.Popen(
        ["sh", "-c", f"sleep 60 & echo $! > {tmp_path / 'child'}; wait"],
        start_new_session=True,
    )


async def _gone(proc: subprocess.Popen[bytes], within: float = 10.0) -> None:
    async def exited() -> bool:
        return proc.poll() is not None

    await wait_for(exited, within=within)


async def test_supervisor_kills_the_runs_when_the_deadline_passes(tmp_path: Path) -> None:
    dog = Watchdog()
    try:
        run = _group(tmp_path)
        dog.hold_until(time.monotonic() + 0.5)
        dog.add(run.pid)
        for _ in range(3):  # renewals keep it alive
            await asyncio.sleep(0.3)
            dog.hold_until(time.monotonic() + 0.5)
        assert run.poll() is None
        await _gone(run)  # no more renewals: killed, the whole group
        assert run.returncode == -signal.SIGKILL
        child = int((tmp_path / "child").read_text())
        await wait_for(lambda: asyncio.sleep(0, not _alive(child)))
        assert dog.expired()
        late = _group(tmp_path)  # a run started after the deadline dies at once
        dog.add(late.pid)
        await _gone(late)
    finally:
        dog.close()


async def test_supervisor_kills_the_runs_when_the_node_dies(tmp_path: Path) -> None:
    node = textwrap.dedent(
        f"""
        import subprocess, sys, time
        from cronhive.engine.watchdog import Watchdog
        dog = Watchdog()
        dog.hold_until(time.monotonic() + 3600)
        run = subprocess.Popen(["sleep", "60"], start_new_session=True)
        dog.add(run.pid)
        open({str(tmp_path / "pid")!r}, "w").write(str(run.pid))
        time.sleep(60)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", node])
    try:

        async def started() -> bool:
            return (tmp_path / "pid").exists() and bool((tmp_path / "pid").read_text())

        await wait_for(started)
        pid = int((tmp_path / "pid").read_text())
        assert _alive(pid)
        proc.kill()  # SIGKILL: the node cannot clean up anything itself
        proc.wait(10)
        await wait_for(lambda: asyncio.sleep(0, not _alive(pid)))
    finally:
        if proc.poll() is None:
            proc.kill()


def _ended(state: RunState, **fields: Any) -> Execution:
    values: dict[str, Any] = {"state": state, "finished_at": T0 + timedelta(seconds=5)}
    return replace(adhoc(("true",), T0), **{**values, **fields})


def test_lost_runs_are_retried_at_once_whatever_the_job_policy() -> None:
    none = RetryPolicy(max_retries=0, delay=60)
    lost = _ended(RunState.LOST, retry=none)
    assert decide_retry(lost) == T0 + timedelta(seconds=5)
    # ... but not for ever: a run that keeps killing its node stops somewhere.
    assert decide_retry(_ended(RunState.LOST, lost_streak=MAX_LOST_IN_A_ROW - 1)) is None
    # Lost attempts do not use up the job's retries for its own failures.
    two = RetryPolicy(max_retries=2, delay=60)
    failed = _ended(RunState.FAILED, retry=two, attempt=3, lost_total=2)
    at = decide_retry(failed)
    assert at is not None and at >= T0 + timedelta(seconds=35)
    assert decide_retry(_ended(RunState.FAILED, retry=two, attempt=3, lost_total=0)) is None
    assert decide_retry(_ended(RunState.LOST, stop_requested=True)) is None
    assert _ended(RunState.SUCCEEDED, attempt=4, lost_total=1).failures == 2


async def test_database_clock_follows_the_database_not_the_host() -> None:
    ahead = timedelta(seconds=10)

    async def database_time() -> datetime:
        return datetime.now(UTC) + ahead

    clock = DatabaseClock(database_time)
    await clock.sync()
    assert abs((clock.now() - datetime.now(UTC) - ahead).total_seconds()) < 0.2
    assert 9.8 < clock.offset < 10.2
    before = clock.now()
    ahead = timedelta(seconds=-10)  # a database that went back: the clock does not
    await clock.sync()
    assert clock.now() >= before


async def test_sigterm_hands_running_runs_over_as_lost_and_they_are_retried(
    store: Store, tmp_path: Path
) -> None:
    async with running_node(store, tmp_path, name="leaving", grace=0.5, drain_grace=0.2) as node:
        job = await create_job(store, job_spec(("sleep", "60")), T0)
        first = await store.enqueue(triggered(job, node.clock.now()))

        async def running() -> bool:
            e = await store.get_execution(first.id, visible_to=None)
            return e.state is RunState.RUNNING

        await wait_for(running)
    runs = sorted(await executions_of(store, job.id), key=lambda r: r.attempt)
    assert [(r.attempt, r.state) for r in runs] == [(1, RunState.LOST), (2, RunState.QUEUED)]
    assert runs[0].reason == "node shutting down; handed over"
    assert runs[1].not_before == runs[0].finished_at  # at once, no backoff
    assert runs[1].lost_streak == 1 and runs[1].failures == 0
    [left] = await store.list_nodes(now=datetime.now(UTC))
    assert (left.state(datetime.now(UTC)), left.down_reason) == ("down", "left the cluster")


async def test_a_fenced_node_gives_its_runs_up_as_lost(store: Store, tmp_path: Path) -> None:
    async with running_node(store, tmp_path, lease_ttl=3.0) as node:
        e = await store.enqueue(adhoc(("sleep", "60"), node.clock.now()))

        async def running() -> bool:
            return (await store.get_execution(e.id, visible_to=None)).state is RunState.RUNNING

        await wait_for(running)
        # The cluster ends the lease (as a reaper on a node with the right clock would).
        async with store._write() as tx:  # type: ignore[attr-defined]
            await tx.run(nodes.update().values(lease_expires_at=T0))

        async def given_up() -> bool:
            return (await store.get_execution(e.id, visible_to=None)).state.terminal

        await wait_for(given_up)
    done = await store.get_execution(e.id, visible_to=None)
    assert done.state is RunState.LOST, done
    retries = [r for r in await executions_of(store) if r.id != e.id]
    assert [(r.attempt, r.lost_streak) for r in retries] == [(2, 1)]


async def test_capacity_is_never_exceeded_by_the_fast_path_and_the_claim_together(
    store: Store, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    command = (
        "sh",
        "-c",
        f'echo "start $(date +%s.%N)" >> {ledger}; sleep 0.3; '
        f'echo "end $(date +%s.%N)" >> {ledger}',
    )
    async with running_node(store, tmp_path, capacity=3) as node:
        now = node.clock.now()
        for _ in range(6):  # scheduled: taken by the fast path
            await create_job(store, job_spec(command, schedule="every 1s"), now)
        for _ in range(6):  # ad hoc: taken by the claim loop
            await store.enqueue(adhoc(command, now))

        async def enough() -> bool:
            return ledger.exists() and ledger.read_text().count("end") >= 24

        await wait_for(enough, within=60)
    events = sorted(
        (float(t), +1 if kind == "start" else -1)
        for kind, t in (line.split() for line in ledger.read_text().splitlines())
    )
    level = peak = 0
    for _, step in events:
        level += step
        peak = max(peak, level)
    assert peak <= 3


async def test_finisher_records_every_end_while_writers_come_and_go(store: Store) -> None:
    node = await store.register_node(
        name="f", tags=frozenset(), capacity=4000, ttl=3600, now=datetime.now(UTC)
    )
    count = 1500
    for _ in range(count):
        await store.enqueue(adhoc(("true",), datetime.now(UTC)))
    claimed = await store.claim(node.id, frozenset(), count, datetime.now(UTC))
    assert len(claimed) == count
    finisher = Finisher(store)
    ok = Outcome(state=RunState.SUCCEEDED, exit_code=0, finished_at=datetime.now(UTC))

    async def end(ex: Execution, pause: int) -> bool:
        for _ in range(pause):
            await asyncio.sleep(0)
        return await finisher.finish(ex.id, node.id, ok)

    results = await asyncio.gather(*(end(ex, i % 7) for i, ex in enumerate(claimed)))
    await finisher.close()
    assert all(results)
    running = await store.list_executions(visible_to=None, states=[RunState.RUNNING], limit=10)
    assert running == []

    assert _ended(RunState.SUCCEEDED, attempt=4, lost_total=1).failures == 2


async def test_a_run_recorded_running_here_but_never_started_is_recorded_lost(
    store: Store, tmp_path: Path
) -> None:
    """A claim that committed while its answer was lost leaves such a run behind."""
    async with running_node(store, tmp_path, capacity=0) as node:  # claims nothing itself
        e = await store.enqueue(adhoc(("true",), node.clock.now()))
        [orphan] = await store.claim(node.node.id, frozenset(), 1, node.clock.now())
        assert orphan.id == e.id

        async def lost() -> bool:
            return (await store.get_execution(e.id, visible_to=None)).state is RunState.LOST

        await wait_for(lost, within=20)
    retries = [r for r in await executions_of(store) if r.id != e.id]
    assert [(r.attempt, r.state) for r in retries] == [(2, RunState.QUEUED)]
