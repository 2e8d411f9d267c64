"""Pre-armed firing (engine.scheduler): a slot due within the lookahead is recorded and
claimed ahead of its instant and started at it; in the sandbox its whole chain is set up
ahead and the command waits at the gate (runner, gated runs). Real processes on both
backends, unisolated and sandboxed; a manual clock decides the instants, so nothing here
depends on how fast the machine is."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import pytest
from _shared.sandbox import folder_outside_tmp, require_sandbox
from enginekit import create_job, executions_of, job_spec, running_node, wait_for

from cronhive.engine import scheduler as scheduler_module
from cronhive.engine.clock import ManualClock
from cronhive.engine.node import NodeProcess
from cronhive.engine.scheduler import Scheduler
from cronhive.metrics import Metrics
from cronhive.model import Concurrency, Execution, RunState
from cronhive.runner import Runner, Sandbox
from cronhive.store import Store

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
SLOT = T0 + timedelta(minutes=1)  # the first slot of a `* * * * *` job created at T0
EARLY = SLOT - timedelta(milliseconds=500)  # within the default lookahead (1 s)


@pytest.fixture(params=["none", "bwrap"])
def sandbox(request: pytest.FixtureRequest) -> Sandbox | None:
    return require_sandbox() if request.param == "bwrap" else None


@pytest.fixture
def marks() -> Iterator[Path]:
    """Where commands leave marks: outside /tmp (a sandbox has its own), writable by the
    run's user (nobody, sandboxed on a root node)."""
    with folder_outside_tmp("cronhive-armed-", 0o1777) as d:
        yield d


def touching(path: Path) -> tuple[str, ...]:
    # Appends, so a second start would show as a second line.
    return ("sh", "-c", f"echo started >> {path}")


async def armed(store: Store, job_id: uuid.UUID) -> Execution:
    """The job's one execution once the node has armed (claimed) it."""
    found: list[Execution] = []

    async def claimed() -> bool:
        found[:] = [e for e in await executions_of(store, job_id) if e.state is RunState.RUNNING]
        return bool(found)

    await wait_for(claimed)
    return found[0]


@contextlib.asynccontextmanager
async def armed_node(
    store: Store, tmp_path: Path, sandbox: Sandbox | None, command: tuple[str, ...]
) -> AsyncIterator[tuple[NodeProcess, ManualClock, Execution]]:
    """A node whose `* * * * *` job (`command`) has its first slot armed, 0.5 s ahead."""
    clock = ManualClock(T0)
    job = await create_job(store, job_spec(command, schedule="* * * * *"), T0)
    async with running_node(store, tmp_path, clock=clock, sandbox=sandbox) as node:
        assert node.scheduler is not None
        await clock.set(EARLY)
        node.scheduler.wake()
        yield node, clock, await armed(store, job.id)


async def test_a_slot_is_claimed_ahead_and_its_process_starts_at_the_instant(
    store: Store, tmp_path: Path, marks: Path, sandbox: Sandbox | None
) -> None:
    mark = marks / "ran"
    async with armed_node(store, tmp_path, sandbox, touching(mark)) as (node, clock, run):
        # Recorded for its instant, claimed by this node, and not started yet.
        assert (run.scheduled_for, run.started_at, run.not_before) == (SLOT, SLOT, SLOT)
        assert run.queued_at == SLOT
        if sandbox is not None:  # set up ahead, its command waiting at the gate
            await wait_for(lambda: _gated(node.runner, run))
        await asyncio.sleep(0.3)
        assert not mark.exists()
        await clock.set(SLOT)
        await wait_for(lambda: _ended(store, run))
    runs = await executions_of(store, run.job_id)
    assert [(r.state, r.attempt) for r in runs] == [(RunState.SUCCEEDED, 1)]
    assert mark.read_text() == "started\n"
    assert run.job_id is not None
    stored = await store.get_job(run.job_id, visible_to=None)
    assert stored.next_fire_at == SLOT + timedelta(minutes=1)


async def test_an_armed_run_counts_its_start_lag_from_the_instant_its_process_went(
    store: Store, tmp_path: Path, marks: Path, sandbox: Sandbox | None
) -> None:
    """The record says started_at = the slot (written when it was armed); the start-lag
    metric must say how late the process really went, not 0 for every armed run."""
    metrics = Metrics()
    late = SLOT + timedelta(milliseconds=400)
    async with armed_node(store, tmp_path, sandbox, touching(marks / "ran")) as (
        node,
        clock,
        run,
    ):
        metrics.instrument_worker(node.worker)
        if sandbox is not None:
            await wait_for(lambda: _gated(node.runner, run))
        await clock.set(late)  # the node let the slot pass by 0.4 s
        await wait_for(lambda: _ended(store, run))
    assert run.started_at == SLOT
    lag = metrics.registry.get_sample_value("cronhive_start_lag_seconds_sum")
    assert metrics.registry.get_sample_value("cronhive_start_lag_seconds_count") == 1
    assert lag == pytest.approx(0.4)


async def test_a_stop_while_armed_ends_the_run_without_a_process(
    store: Store, tmp_path: Path, marks: Path, sandbox: Sandbox | None
) -> None:
    mark = marks / "ran"
    async with armed_node(store, tmp_path, sandbox, touching(mark)) as (_, clock, run):
        await store.request_stop(run.id, visible_to=None, reason="not today", now=clock.now())
        await wait_for(lambda: _ended(store, run))
        await clock.set(SLOT + timedelta(seconds=1))
        await asyncio.sleep(0.3)
    done = await store.get_execution(run.id, visible_to=None)
    assert done.state is RunState.STOPPED and done.exit_code is None and done.signal is None
    assert not mark.exists()
    assert len(await executions_of(store, run.job_id)) == 1  # a stop is not retried


async def test_a_node_shutting_down_hands_an_armed_run_over_for_its_instant(
    store: Store, tmp_path: Path, marks: Path, sandbox: Sandbox | None
) -> None:
    mark = marks / "ran"
    async with armed_node(store, tmp_path, sandbox, touching(mark)) as (_, clock, run):
        pass  # and the node leaves, before the slot
    # The node left before the slot: the run never started here and is handed over.
    first = await store.get_execution(run.id, visible_to=None)
    assert first.state is RunState.LOST and "shutting down" in (first.reason or "")
    assert not mark.exists()
    retry = [e for e in await executions_of(store, run.job_id) if e.attempt == 2]
    assert len(retry) == 1 and retry[0].state is RunState.QUEUED
    assert retry[0].not_before == SLOT  # never before its slot, on whichever node
    # Another node takes it at the instant, not before.
    async with running_node(store, tmp_path, clock=clock, name="n2"):
        await asyncio.sleep(0.3)
        assert (await store.get_execution(retry[0].id, visible_to=None)).state is RunState.QUEUED
        await clock.set(SLOT)
        await wait_for(lambda: _ended(store, retry[0]))
    assert (await store.get_execution(retry[0].id, visible_to=None)).state is RunState.SUCCEEDED
    assert mark.read_text() == "started\n"


async def test_busy_jobs_are_decided_at_their_instant_not_armed_early(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # More busy jobs than one batch: a batch of them must not make the loop spin either.
    monkeypatch.setattr(scheduler_module, "BATCH", 2)
    clock = ManualClock(T0)
    spec = partial(job_spec, ("sleep", "30"), schedule="* * * * *")
    jobs = [await create_job(store, spec(concurrency=Concurrency.FORBID), T0) for _ in range(3)]
    async with running_node(store, tmp_path, clock=clock, grace=0.5) as node:
        assert node.scheduler is not None
        await clock.set(SLOT)
        node.scheduler.wake()
        for job in jobs:
            await armed(store, job.id)  # the first slots run (sleep 30)
        second = SLOT + timedelta(minutes=1)
        ticks = 0
        tick = node.scheduler.tick

        async def counted() -> int:
            nonlocal ticks
            ticks += 1
            return await tick()

        node.scheduler.tick = counted  # type: ignore[method-assign]
        await clock.set(second - timedelta(milliseconds=500))
        node.scheduler.wake()
        await asyncio.sleep(0.5)
        # Busy: nothing recorded for the next slots yet, and the loop waits for their
        # instant instead of ticking again and again.
        assert [len(await executions_of(store, j.id)) for j in jobs] == [1, 1, 1]
        assert 1 <= ticks <= 4
        await clock.set(second)

        async def skipped() -> bool:
            runs = [e for j in jobs for e in await executions_of(store, j.id)]
            return sum(e.state is RunState.SKIPPED for e in runs) == 3

        await wait_for(skipped)
    for job in jobs:
        later = [e for e in await executions_of(store, job.id) if e.scheduled_for == second]
        assert len(later) == 1 and "overlap" in (later[0].reason or "")
        assert later[0].queued_at == second


async def test_without_a_lookahead_nothing_is_taken_before_its_instant(
    store: Store, tmp_path: Path
) -> None:
    clock = ManualClock(T0)
    job = await create_job(store, job_spec(("true",), schedule="* * * * *"), T0)
    scheduler = Scheduler(store, clock, None, node_id=uuid.uuid4())
    await clock.set(EARLY)
    assert await scheduler.tick() == 0
    assert await executions_of(store, job.id) == []
    await clock.set(SLOT)
    assert await scheduler.tick() == 1
    assert [e.scheduled_for for e in await executions_of(store, job.id)] == [SLOT]


@pytest.mark.parametrize("bad", [-0.1, 1.5])
def test_a_lookahead_past_a_second_is_refused(store: Store, bad: float) -> None:
    with pytest.raises(ValueError, match="lookahead"):
        Scheduler(store, ManualClock(T0), None, node_id=uuid.uuid4(), lookahead=bad)


async def _gated(procs: Runner, run: Execution) -> bool:
    return any(h.run_id == str(run.id) and h.gated for h in procs.handles())


async def _ended(store: Store, run: Execution) -> bool:
    return (await store.get_execution(run.id, visible_to=None)).state.terminal


async def test_an_allow_job_is_armed_while_its_previous_run_is_still_on(
    store: Store, tmp_path: Path
) -> None:
    clock = ManualClock(T0)
    job = await create_job(store, job_spec(("sleep", "30"), schedule="* * * * *"), T0)
    async with running_node(store, tmp_path, clock=clock, grace=0.5) as node:
        assert node.scheduler is not None
        await clock.set(SLOT)
        node.scheduler.wake()
        await armed(store, job.id)  # the first slot runs (sleep 30)
        second = SLOT + timedelta(minutes=1)
        await clock.set(second - timedelta(milliseconds=500))
        node.scheduler.wake()

        async def both() -> bool:
            runs = await executions_of(store, job.id)
            return sorted(e.scheduled_for for e in runs if e.state is RunState.RUNNING) == [
                SLOT,
                second,
            ]

        await wait_for(both)  # armed ahead, beside the run still going
