"""One node in-process on each backend, real processes: firing, claiming, policies, output."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import uuid
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

from enginekit import adhoc, create_job, executions_of, job_spec, running_node, terminal, wait_for

from cronhive.engine.clock import ManualClock
from cronhive.engine.executions import triggered
from cronhive.engine.scheduler import Scheduler
from cronhive.model import Concurrency, Misfire, RunState, Stream
from cronhive.store import Store, open_store

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


async def test_adhoc_run_succeeds_and_its_output_reaches_the_store(
    store: Store, tmp_path: Path
) -> None:
    async with running_node(store, tmp_path) as node:
        e = await store.enqueue(
            adhoc(("sh", "-c", "printf out; printf err >&2; exit 0"), node.clock.now())
        )
        await wait_for(lambda: terminal(store, e.id))
    done = await store.get_execution(e.id, visible_to=None)
    assert done.state is RunState.SUCCEEDED and done.exit_code == 0
    assert done.node_id is not None and done.started_at and done.finished_at
    chunks = await store.read_output(e.id, streams=[Stream.STDOUT, Stream.STDERR])
    assert b"".join(c.data for c in chunks if c.stream is Stream.STDOUT) == b"out"
    assert b"".join(c.data for c in chunks if c.stream is Stream.STDERR) == b"err"
    assert done.stdout_bytes == 3 and done.stderr_bytes == 3


async def test_exit_code_signal_and_missing_executable(store: Store, tmp_path: Path) -> None:
    async with running_node(store, tmp_path) as node:
        now = node.clock.now()
        failed = await store.enqueue(adhoc(("sh", "-c", "exit 7"), now))
        killed = await store.enqueue(adhoc(("sh", "-c", "kill -9 $$"), now))
        missing = await store.enqueue(adhoc(("/no/such/binary",), now))
        for e in (failed, killed, missing):
            await wait_for(partial(terminal, store, e.id))
    f = await store.get_execution(failed.id, visible_to=None)
    k = await store.get_execution(killed.id, visible_to=None)
    m = await store.get_execution(missing.id, visible_to=None)
    assert (f.state, f.exit_code, f.signal) == (RunState.FAILED, 7, None)
    assert (k.state, k.exit_code, k.signal) == (RunState.FAILED, None, 9)
    assert m.state is RunState.FAILED and m.exit_code is None
    assert "No such file" in (m.reason or "")


async def test_timeout_is_recorded(store: Store, tmp_path: Path) -> None:
    async with running_node(store, tmp_path, grace=0.5) as node:
        e = await store.enqueue(adhoc(("sleep", "30"), node.clock.now(), timeout=0.5))
        await wait_for(lambda: terminal(store, e.id))
    done = await store.get_execution(e.id, visible_to=None)
    assert done.state is RunState.TIMED_OUT
    assert "timed out" in (done.reason or "")


async def test_failed_runs_are_retried_with_new_attempts_then_give_up(
    store: Store, tmp_path: Path
) -> None:
    async with running_node(store, tmp_path) as node:
        job = await create_job(store, job_spec(("sh", "-c", "exit 1"), retries=2), T0)
        e = await store.enqueue(triggered(job, node.clock.now()))

        async def three_attempts_done() -> bool:
            runs = await executions_of(store, job.id)
            return len(runs) == 3 and all(r.state.terminal for r in runs)

        await wait_for(three_attempts_done)
    runs = sorted(await executions_of(store, job.id), key=lambda r: r.attempt)
    assert [r.attempt for r in runs] == [1, 2, 3]
    assert {r.scheduled_for for r in runs} == {e.scheduled_for}
    assert all(r.state is RunState.FAILED for r in runs)
    # Backoff: each retry became claimable no earlier than the previous one ended.
    for before, after in itertools.pairwise(runs):
        assert before.finished_at is not None and after.not_before >= before.finished_at
    job_now = await store.get_job(job.id, visible_to=None)
    assert job_now.failure_count == 3 and job_now.last_state is RunState.FAILED


async def test_schedule_fires_each_slot_once_with_an_injected_clock(
    store: Store, tmp_path: Path
) -> None:
    clock = ManualClock(T0)
    job = await create_job(store, job_spec(("true",), schedule="* * * * *"), T0)
    async with running_node(store, tmp_path, clock=clock) as node:
        assert node.scheduler is not None
        for minute in range(1, 4):
            await clock.set(T0 + timedelta(minutes=minute, milliseconds=5))
            await node.scheduler.tick()
            await node.scheduler.tick()  # a second tick at the same instant fires nothing

        async def all_done() -> bool:
            runs = await executions_of(store, job.id)
            return len(runs) == 3 and all(r.state.terminal for r in runs)

        await wait_for(all_done)
    runs = await executions_of(store, job.id)
    assert sorted(r.scheduled_for for r in runs) == [T0 + timedelta(minutes=m) for m in (1, 2, 3)]
    assert all(r.state is RunState.SUCCEEDED for r in runs), [(r.state, r.reason) for r in runs]
    stored = await store.get_job(job.id, visible_to=None)
    assert stored.next_fire_at == T0 + timedelta(minutes=4)
    assert stored.success_count == 3


async def test_misfire_skip_records_every_missed_slot_with_its_reason(
    store: Store, tmp_path: Path
) -> None:
    clock = ManualClock(T0)
    job = await create_job(
        store, job_spec(("true",), schedule="* * * * *", misfire=Misfire.SKIP), T0
    )
    async with running_node(store, tmp_path, clock=clock) as node:
        assert node.scheduler is not None
        await clock.set(T0 + timedelta(minutes=5, seconds=1))
        await node.scheduler.tick()
    runs = sorted(await executions_of(store, job.id), key=lambda r: r.scheduled_for)
    assert [r.state for r in runs[:4]] == [RunState.SKIPPED] * 4
    assert runs[4].state is not RunState.SKIPPED
    assert all("misfire" in (r.reason or "") for r in runs[:4])


async def test_forbid_skips_overlapping_slot_and_replace_stops_the_old_run(
    store: Store, tmp_path: Path
) -> None:
    clock = ManualClock(T0)
    forbid = await create_job(
        store,
        job_spec(("sleep", "30"), schedule="* * * * *", concurrency=Concurrency.FORBID),
        T0,
    )
    replace = await create_job(
        store,
        job_spec(("sleep", "30"), schedule="* * * * *", concurrency=Concurrency.REPLACE),
        T0,
    )
    async with running_node(store, tmp_path, clock=clock, grace=0.5) as node:
        assert node.scheduler is not None
        await clock.set(T0 + timedelta(minutes=1))
        await node.scheduler.tick()

        async def both_running() -> bool:
            runs = await executions_of(store)
            return sum(r.state is RunState.RUNNING for r in runs) == 2

        await wait_for(both_running)
        await clock.set(T0 + timedelta(minutes=2))
        await node.scheduler.tick()

        async def replaced() -> bool:
            runs = await executions_of(store, replace.id)
            return any(r.state is RunState.STOPPED for r in runs)

        await wait_for(replaced)
        f_runs = sorted(await executions_of(store, forbid.id), key=lambda r: r.scheduled_for)
        assert [r.state for r in f_runs] == [RunState.RUNNING, RunState.SKIPPED]
        assert "overlap" in (f_runs[1].reason or "")
        r_runs = sorted(await executions_of(store, replace.id), key=lambda r: r.scheduled_for)
        assert r_runs[0].state is RunState.STOPPED and "replaced" in (r_runs[0].reason or "")
        assert r_runs[1].state in (RunState.QUEUED, RunState.RUNNING)


async def test_two_schedulers_racing_the_same_slot_fire_it_once(
    store: Store, tmp_path: Path
) -> None:
    """Two nodes' scheduler ticks at the same instant on separate connections: the
    database (row locks, the unique slot key) lets exactly one execution through."""
    job = await create_job(store, job_spec(("true",), schedule="* * * * *"), T0)
    url = getattr(store, "url", None)
    other = await open_store(url) if url else store
    try:
        clock = ManualClock(T0 + timedelta(minutes=1))
        a = Scheduler(store, clock, None, uuid.uuid4())
        b = Scheduler(other, clock, None, uuid.uuid4())
        await asyncio.gather(a.tick(), b.tick(), a.tick(), b.tick())
    finally:
        if other is not store:
            await other.close()
    runs = await executions_of(store, job.id)
    assert [(r.scheduled_for, r.attempt) for r in runs] == [(T0 + timedelta(minutes=1), 1)]


async def test_output_past_the_cap_is_not_stored_and_the_cap_is_recorded(
    store: Store, tmp_path: Path
) -> None:
    async with running_node(store, tmp_path) as node:
        e = await store.enqueue(
            adhoc(("head", "-c", "300000", "/dev/zero"), node.clock.now(), output_cap=1000)
        )
        await wait_for(lambda: terminal(store, e.id))
    done = await store.get_execution(e.id, visible_to=None)
    assert done.state is RunState.SUCCEEDED and done.output_capped
    assert done.stdout_bytes == 300000  # what the run wrote; the spool kept 1000 of it
    chunks = await store.read_output(e.id, streams=[Stream.STDOUT], limit=10_000)
    assert sum(len(c.data) for c in chunks) == 1000


async def test_a_300_mib_run_with_a_1_kib_cap_never_grows_its_spool_past_the_cap(
    store: Store, tmp_path: Path
) -> None:
    async with running_node(store, tmp_path) as node:
        e = await store.enqueue(
            adhoc(("head", "-c", "300M", "/dev/zero"), node.clock.now(), output_cap=1024)
        )
        spool, biggest = tmp_path / "spool-n1", 0
        while not await terminal(store, e.id):  # sample the spool while the run writes
            for path in spool.glob(f"{e.id}.*"):
                with contextlib.suppress(FileNotFoundError):
                    biggest = max(biggest, path.stat().st_size)
            await asyncio.sleep(0.001)
    done = await store.get_execution(e.id, visible_to=None)
    assert done.state is RunState.SUCCEEDED and done.output_capped  # the record says so
    assert 0 < biggest <= 1024
    assert done.stdout_bytes == 300 << 20
    chunks = await store.read_output(e.id, streams=[Stream.STDOUT], limit=10_000)
    assert sum(len(c.data) for c in chunks) == 1024
