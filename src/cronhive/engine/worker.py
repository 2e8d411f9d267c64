"""The worker: claims queued runs this node has room and tags for, and runs them.

Pull, not push: a busy node simply does not claim. Capacity is one counter: the claim
loop and the scheduler's fast path both `reserve` slots before they claim, so together
they never take more than the node has room for. Each run's process group is registered
with the `Watchdog`, whose supervisor kills it if the lease lapses. Each run's output goes
to the store through an `OutputShipper`; its end goes through a `Finisher`
(`Store.finish_many`, in batches), which drops it if the cluster gave the run away.

A run this node gives up (its lease lapsed, or it is shutting down) ends `lost`, never
`stopped`: it is retried at once elsewhere. `stopped` is for a person or a replace.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Protocol
from uuid import UUID

from cronhive import runner, sqljobs
from cronhive.auth.policy import DEFAULT_POLICY
from cronhive.blobs.scripts import ScriptCache
from cronhive.engine import limits
from cronhive.engine.clock import Clock
from cronhive.engine.finisher import Finisher
from cronhive.engine.shipper import OutputShipper
from cronhive.engine.watchdog import Watchdog
from cronhive.errors import CronhiveError, Fenced
from cronhive.model import Execution, Outcome, OutputChunk, RunState
from cronhive.store import Store
from cronhive.store.base import RunCaps

log = logging.getLogger(__name__)

CONTENDED_PAUSE = 0.05  # seconds
# How long before its slot an armed run's sandbox is set up (its command at the gate): a
# burst of a hundred sandboxes takes ~0.3 s of both cores of a small machine.
SET_UP_AHEAD = timedelta(seconds=0.5)
POLL_INTERVAL = 1.0  # seconds; notifications usually wake the worker sooner


class Handle(Protocol):
    """What the worker needs of a started run: a process (`runner.RunHandle`) or a SQL
    statement (`sqljobs.SqlRun`)."""

    pid: int | None

    async def wait(self) -> runner.RunResult: ...

    async def stop(self, grace: float | None = None) -> runner.RunResult: ...


class Worker:
    def __init__(
        self,
        store: Store,
        procs: runner.Runner,
        clock: Clock,
        *,
        node_id: Callable[[], UUID],
        tags: frozenset[str],
        capacity: int,
        output_cap: int,
        watchdog: Watchdog | None = None,
        node_name: str = "",
        sql: sqljobs.SqlJobs | None = None,
        scripts: ScriptCache | None = None,
        on_finished: Callable[[UUID, Outcome], None] | None = None,
        caps: RunCaps | None = None,
    ) -> None:
        self._store = store
        self._runner = procs
        self._clock = clock
        self._node_id = node_id
        self.tags = tags
        self.capacity = capacity
        self._output_cap = output_cap
        self._tasks: dict[UUID, asyncio.Task[None]] = {}
        self._handles: dict[UUID, Handle] = {}
        # SQL runs go to their own executor; a node without [databases] refuses them.
        self._sql = sql or sqljobs.SqlJobs({}, DEFAULT_POLICY)
        self._stopping: dict[UUID, tuple[str, bool]] = {}  # reason, ends lost
        self._held: dict[UUID, asyncio.Event] = {}  # armed ahead of their slot: a stop wakes
        self._wake = asyncio.Event()
        self._finisher = Finisher(store)
        self._watchdog = watchdog or Watchdog(supervised=False)
        self._reserved = 0
        self._suspects: set[UUID] = set()
        self.node_name = node_name
        self.caps = caps  # per-owner caps on running runs (the policy's concurrent_runs)
        self.claiming = True
        self._scripts = scripts  # where stored scripts are fetched to (None: refused)
        self._on_finished = on_finished  # after an end is recorded (the output archive)
        # When a run's command (or statement) was let go, e.g. for metrics: its record's
        # started_at is the slot for a run armed ahead, not this instant.
        self.on_started: Callable[[Execution, datetime], None] | None = None

    @property
    def free(self) -> int:
        if not self.claiming:
            return 0
        return max(0, self.capacity - len(self._tasks) - self._reserved)

    def reserve(self, wanted: int) -> int:
        """Takes up to `wanted` free slots for a claim; give back what the claim did not
        use with `release` (adopting a run uses its slot)."""
        if self._watchdog.expired():
            return 0  # the lease may be lapsing: a run taken now would be killed at once
        granted = min(wanted, self.free)
        self._reserved += granted
        return granted

    def release(self, count: int) -> None:
        self._reserved = max(0, self._reserved - count)

    def wake(self) -> None:
        self._wake.set()

    def stop_claiming(self) -> None:
        """Ends `run` at its next safe point (never cancel a claim: what it took would be
        committed as running here but never started)."""
        self.claiming = False
        self._wake.set()

    async def run(self) -> None:
        """Claims and starts runs until `stop_claiming()`."""
        while self.claiming:
            # A look first, a read: one that finds nothing (woken by every end) holds no
            # capacity while the scheduler's fast path needs it for the slots it arms.
            due, failed = await self._look()
            if failed or (due is not None and due <= self._clock.now()):
                room = self.reserve(self.free)  # a failed look: let the claim say why
                if room:
                    try:
                        claimed = await self._store.claim(
                            self._node_id(), self.tags, room, self._clock.now(), caps=self.caps
                        )
                    except Fenced:
                        claimed = []  # the heartbeat re-registers the node
                    except CronhiveError as exc:
                        log.warning("claiming failed: %s", exc)
                        claimed = []
                    finally:
                        self.release(room)
                    self.adopt(claimed)
                    if len(claimed) and self.free:
                        continue  # there may be more waiting
                due, failed = await self._look()  # what is left: a retry's backoff
            self._wake.clear()
            if not self.claiming:
                break
            try:
                async with asyncio.timeout(self._pause(due, failed)):
                    await self._wake.wait()
            except TimeoutError:
                pass

    async def _look(self) -> tuple[datetime | None, bool]:
        """(The earliest `not_before` of runs this node may claim, None for none; whether
        the look failed.) Nothing is looked for without a free place."""
        if not self.free:
            return None, False
        try:
            return await self._store.next_claimable_at(self.tags, caps=self.caps), False
        except CronhiveError:
            return None, True

    def _pause(self, due: datetime | None, failed: bool) -> float:
        """Seconds until the next look: the poll period, or sooner when a queued retry's
        backoff ends before it (no notification announces that moment)."""
        if due is None or failed or not self.free:
            return POLL_INTERVAL
        wait = (due - self._clock.now()).total_seconds()
        # Due already but not claimed: another node holds it, or our lease is being
        # renewed; look again shortly rather than spin.
        return min(POLL_INTERVAL, wait if wait > 0 else CONTENDED_PAUSE)

    def adopt(self, executions: list[Execution]) -> None:
        """Starts executions already marked running on this node (claimed here or by the
        scheduler's fast path)."""
        for execution in executions:
            task = asyncio.create_task(self._execute(execution), name=f"run-{execution.id}")
            self._tasks[execution.id] = task
            task.add_done_callback(partial(self._done, execution.id))

    def _done(self, execution_id: UUID, _task: asyncio.Task[None]) -> None:
        self._tasks.pop(execution_id, None)
        self._handles.pop(execution_id, None)
        self._stopping.pop(execution_id, None)
        self._wake.set()

    def running(self) -> list[UUID]:
        return list(self._tasks)

    async def reconcile(self, recorded: list[UUID]) -> None:
        """Ends runs the store says run here but this node never started (a claim that
        committed while its answer was lost): recorded `lost`, so they are retried. One
        seen only once may be a claim whose answer is still on its way; seen twice in a
        row, it is an orphan."""
        unknown = set(recorded) - set(self._tasks)
        orphans, self._suspects = unknown & self._suspects, unknown - self._suspects
        for execution_id in orphans:
            log.error("run %s is recorded running here but is not; recording it lost", execution_id)
            outcome = Outcome(
                state=RunState.LOST,
                reason="the node lost track of this run (its claim's answer never arrived)",
                finished_at=self._clock.now(),
            )
            await self._finisher.finish(execution_id, self._node_id(), outcome)

    async def stop(
        self, execution_id: UUID, reason: str, grace: float | None = None, *, lost: bool = False
    ) -> None:
        """Stops a run of this node: a stop request or a replace (`stopped`), or this node
        giving the run up (`lost=True`: fenced, shutting down; retried elsewhere)."""
        if execution_id not in self._tasks:
            return
        self._stopping.setdefault(execution_id, (reason, lost))
        if (held := self._held.get(execution_id)) is not None:
            held.set()  # armed, not started: it ends without a process
        handle = self._handles.get(execution_id)
        if handle is not None:
            if handle.pid is not None:
                self._watchdog.stopping(execution_id, RunState.LOST if lost else RunState.STOPPED)
            await handle.stop(grace)

    async def stop_all(
        self, reason: str, grace: float | None = None, *, lost: bool = False
    ) -> None:
        await asyncio.gather(*(self.stop(i, reason, grace, lost=lost) for i in list(self._tasks)))

    async def close(self) -> None:
        """Ends the finisher's writers; call after the last run ended."""
        await self._finisher.close()

    async def drain(self, within: float) -> bool:
        """Waits up to `within` seconds for running runs to end; True if all did. A run
        armed ahead of its slot is one of them: it starts at its instant, as a run
        claimed just before the shutdown does (handing it over would record it lost)."""
        self.claiming = False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while self._tasks:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            await asyncio.wait(list(self._tasks.values()), timeout=remaining)
        return True

    async def _execute(self, execution: Execution) -> None:
        node_id = self._node_id()
        shipper = OutputShipper(self._store, execution.id, node_id, cap=self._cap(execution))
        spec = execution.run
        armed = execution.scheduled_for > self._clock.now()
        handle: Handle | None = None
        # Set up ahead, the command waiting at the gate: at the instant only its fork and
        # exec remain. Not at once when armed: the sandboxes of slots spread over a second
        # are then set up as spread, not in bursts that would delay the slots due meanwhile.
        if armed and spec.sql is None and self._runner.sandbox is not None:
            await self._hold(execution, execution.scheduled_for - SET_UP_AHEAD)
            if execution.id not in self._stopping:
                handle = await self._spawn(execution, shipper, gated=True)
                if handle is None:
                    return
        if armed:
            await self._hold(execution, execution.scheduled_for)
        unstarted = self._unstarted(execution)
        if handle is None:
            if unstarted is not None:
                await self._finish(execution, node_id, unstarted)
                return
            if (handle := await self._spawn(execution, shipper)) is None:
                return
            self._began(execution)
            if (stopping := self._stopping.get(execution.id)) is not None:
                # Stopped while it was being started: now that it has a handle, as any stop.
                reason, lost = stopping
                await self.stop(execution.id, reason, lost=lost)
        elif isinstance(handle, runner.RunHandle):
            if unstarted is None:
                handle.go()
                self._began(execution)
            else:
                handle.abort()
        pid = handle.pid
        try:
            result = await handle.wait()
        except BaseException:
            if pid is not None:
                self._watchdog.remove(pid)
            raise
        outcome = unstarted or self._outcome(execution, result, shipper)
        if pid is not None:
            # Told before the commit: should this node freeze or die before it, the
            # supervisor records this end rather than let the run be retried as lost.
            self._watchdog.ended(pid, execution.id, outcome)
        tail = await shipper.tail()
        await self._finish(execution, node_id, outcome, tail)
        if pid is not None:
            self._watchdog.settled(execution.id)
        if spec.sql is None:
            self._runner.discard(str(execution.id))

    async def _spawn(
        self, execution: Execution, shipper: OutputShipper, *, gated: bool = False
    ) -> Handle | None:
        """Starts the run and tells the supervisor; None if it could not start (recorded
        failed)."""
        try:
            handle = await self._start(execution, shipper, gated=gated)
        except CronhiveError as exc:
            failed = Outcome(state=RunState.FAILED, reason=str(exc), finished_at=self._clock.now())
            await self._finish(execution, self._node_id(), failed)
            return None
        self._handles[execution.id] = handle
        if handle.pid is not None:
            self._watchdog.add(handle.pid, execution.id)
        return handle

    def _began(self, execution: Execution) -> None:
        if self.on_started is not None:
            self.on_started(execution, self._clock.now())

    def _unstarted(self, execution: Execution) -> Outcome | None:
        """How a run ends that must not start now (None: it may start): stopped, or
        given up, before it started; or the lease lapsed while it was being claimed or
        held (the node froze, or its database stalled): another node may already run its
        next attempt."""
        if (stopping := self._stopping.get(execution.id)) is not None:
            reason, gives_up = stopping
            state = RunState.LOST if gives_up else RunState.STOPPED
            return Outcome(state=state, reason=reason, finished_at=self._clock.now())
        if self._watchdog.expired():
            reason = "fenced: the lease lapsed before the run could start"
            return Outcome(state=RunState.LOST, reason=reason, finished_at=self._clock.now())
        return None

    async def _hold(self, execution: Execution, until: datetime) -> None:
        """Waits, for a slot armed ahead of its instant (engine.scheduler), until `until`
        or a stop. The timer may fire a hair early, hence the loop: a run never starts
        before its slot."""
        wake = self._held.setdefault(execution.id, asyncio.Event())
        try:
            while execution.id not in self._stopping and self._clock.now() < until:
                await self._clock.sleep_until(until, wake)
        finally:
            if until >= execution.scheduled_for or execution.id in self._stopping:
                self._held.pop(execution.id, None)  # kept between the two waits

    async def _start(
        self, execution: Execution, shipper: OutputShipper, *, gated: bool = False
    ) -> Handle:
        """The dispatch point: a SQL statement to its executor, a command to the runner
        (`gated`: set up, its command waiting for `go`)."""
        spec = execution.run
        if spec.sql is not None:
            return self._sql.start(
                run_id=str(execution.id),
                owner=execution.owner,
                spec=spec.sql,
                timeout=spec.timeout,
                sink=shipper,
                output_cap=self._cap(execution),
                # Every attempt of one slot shares it: the next fences off a stale one.
                slot=f"{execution.job_id or execution.owner}@{execution.scheduled_for.isoformat()}",
            )
        argv, expose = await self._command(execution)
        applied = self._limits(execution)
        return await self._runner.start(
            runner.RunSpec(
                run_id=str(execution.id),
                argv=argv,
                expose=expose,
                shell=spec.shell,
                env={**spec.env, **self._identity(execution)},
                cwd=spec.cwd,
                user=spec.run_as,
                timeout=spec.timeout,
                job_name=execution.job_name,
                output_cap=self._cap(execution),
                limits=applied.limits,
            ),
            sink=shipper,
            gated=gated,
        )

    async def _command(self, execution: Execution) -> tuple[tuple[str, ...], tuple[Path, ...]]:
        """The argv, and the files the sandbox must show: a stored script is fetched
        (verified, cached) and run as `interpreter... file args...`."""
        script = execution.run.script
        if script is None:
            return execution.run.command, ()
        if self._scripts is None:
            raise CronhiveError("this node has no blob store to fetch scripts from")
        path = await self._scripts.path(script)
        return (*script.interpreter, str(path), *execution.run.command), (path,)

    def _identity(self, execution: Execution) -> dict[str, str]:
        """What a run knows of itself; CRONHIVE_FENCE lets its own resources refuse a
        stale writer (a higher token means a newer attempt: see docs/fencing.md)."""
        return {
            "CRONHIVE_ATTEMPT": str(execution.attempt),
            "CRONHIVE_FENCE": str(execution.fence or 0),
            "CRONHIVE_SLOT": execution.scheduled_for.isoformat(),
            "CRONHIVE_NODE": self.node_name,
        }

    def _limits(self, execution: Execution) -> limits.Applied:
        return limits.effective(self._runner.default_limits, execution.run.limits)

    def _limits_record(self, execution: Execution, result: runner.RunResult) -> str | None:
        """What the run's record says of its limits (None: it asked for none)."""
        if execution.run.sql is not None:
            return None
        sandbox = self._runner.sandbox
        return limits.describe(
            self._limits(execution),
            result.limits_applied,
            controllers=self._runner.cgroup_controllers,
            as_root=limits.runs_as_root(
                execution.run.run_as, sandbox.run_user if sandbox is not None else None
            ),
        )

    def _cap(self, execution: Execution) -> int:
        return execution.run.output_cap or self._output_cap

    def leader_reaped(
        self,
        handle: runner.RunHandle,
        state: runner.RunState,
        exit_code: int | None,
        sig: int | None,
        _error: str | None,
    ) -> None:
        """The runner's exit listener: tells the supervisor the status at once."""
        if handle.pid is None:
            return
        run = UUID(handle.run_id)
        _, lost = self._stopping.get(run, (None, False))
        if lost or (sig == signal.SIGKILL and self._watchdog.expired()):
            ours = RunState.LOST
        else:
            ours = RunState(state.value)
        self._watchdog.reaped(handle.pid, run, ours, exit_code, sig)

    def _outcome(
        self, execution: Execution, result: runner.RunResult, shipper: OutputShipper
    ) -> Outcome:
        reason = result.error
        state = RunState(result.state.value)
        stopping, lost = self._stopping.get(execution.id, (None, False))
        if result.state is runner.RunState.STOPPED:
            reason = stopping or reason
            if lost:
                state = RunState.LOST
        if result.state is runner.RunState.TIMED_OUT:
            reason = f"timed out after {execution.run.timeout:g}s"
        if result.signal == signal.SIGKILL and self._watchdog.expired():
            # Killed by the supervisor: the lease lapsed, so the run is not ours to judge.
            state, reason = RunState.LOST, "fenced: the lease was not renewed in time"
        return Outcome(
            state=state,
            exit_code=result.exit_code,
            signal=result.signal,
            reason=reason,
            finished_at=self._clock.now(),
            stdout_bytes=result.stdout_bytes,
            stderr_bytes=result.stderr_bytes,
            output_capped=shipper.capped or result.output_capped,
            limits_applied=self._limits_record(execution, result),
        )

    async def _finish(
        self,
        execution: Execution,
        node_id: UUID,
        outcome: Outcome,
        chunks: Sequence[OutputChunk] = (),
    ) -> None:
        if not await self._finisher.finish(execution.id, node_id, outcome, chunks):
            log.warning("run %s was given away meanwhile; its result is dropped", execution.id)
        elif self._on_finished is not None:
            self._on_finished(execution.id, outcome)
