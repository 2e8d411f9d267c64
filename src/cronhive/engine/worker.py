"""The worker: claims queued runs this node has room and tags for, and runs them.

Pull, not push: a busy node simply does not claim. Each run's output goes to the store
through an `OutputShipper`; its end goes through a `Finisher` (`Store.finish_many`, in
batches), which drops it if the cluster gave the run away meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from functools import partial
from uuid import UUID

from cronhive import runner
from cronhive.engine.clock import Clock
from cronhive.engine.finisher import Finisher
from cronhive.engine.shipper import OutputShipper
from cronhive.errors import CronhiveError, Fenced
from cronhive.model import Execution, Outcome, RunState
from cronhive.store import Store

log = logging.getLogger(__name__)

CONTENDED_PAUSE = 0.05  # seconds
POLL_INTERVAL = 1.0  # seconds; notifications usually wake the worker sooner


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
    ) -> None:
        self._store = store
        self._runner = procs
        self._clock = clock
        self._node_id = node_id
        self.tags = tags
        self.capacity = capacity
        self._output_cap = output_cap
        self._tasks: dict[UUID, asyncio.Task[None]] = {}
        self._handles: dict[UUID, runner.RunHandle] = {}
        self._stopping: dict[UUID, str] = {}
        self._wake = asyncio.Event()
        self._finisher = Finisher(store)
        self.claiming = True

    @property
    def free(self) -> int:
        return max(0, self.capacity - len(self._tasks)) if self.claiming else 0

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
            if self.free:
                try:
                    claimed = await self._store.claim(
                        self._node_id(), self.tags, self.free, self._clock.now()
                    )
                except Fenced:
                    claimed = []  # the heartbeat re-registers the node
                except CronhiveError:
                    log.exception("claiming failed")
                    claimed = []
                self.adopt(claimed)
                if len(claimed) and self.free:
                    continue  # there may be more waiting
            self._wake.clear()
            if not self.claiming:
                break
            try:
                async with asyncio.timeout(await self._pause()):
                    await self._wake.wait()
            except TimeoutError:
                pass

    async def _pause(self) -> float:
        """Seconds until the next look: the poll period, or sooner when a queued retry's
        backoff ends before it (no notification announces that moment)."""
        if not self.free:
            return POLL_INTERVAL
        try:
            due = await self._store.next_claimable_at(self.tags)
        except CronhiveError:
            return POLL_INTERVAL
        if due is None:
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

    async def stop(self, execution_id: UUID, reason: str, grace: float | None = None) -> None:
        """Stops a run of this node (a stop request, a replace, a fenced lease)."""
        if execution_id not in self._tasks:
            return
        self._stopping.setdefault(execution_id, reason)
        handle = self._handles.get(execution_id)
        if handle is not None:
            await handle.stop(grace)

    async def stop_all(self, reason: str, grace: float | None = None) -> None:
        await asyncio.gather(*(self.stop(i, reason, grace) for i in list(self._tasks)))

    async def drain(self, within: float) -> bool:
        """Waits up to `within` seconds for running runs to end; True if all did."""
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
        try:
            handle = await self._runner.start(
                runner.RunSpec(
                    run_id=str(execution.id),
                    argv=spec.command,
                    shell=spec.shell,
                    env=spec.env,
                    cwd=spec.cwd,
                    user=spec.run_as,
                    timeout=spec.timeout,
                    job_name=execution.job_name,
                    output_cap=self._cap(execution),
                ),
                sink=shipper,
            )
        except CronhiveError as exc:
            await self._finish(
                execution,
                node_id,
                Outcome(state=RunState.FAILED, reason=str(exc), finished_at=self._clock.now()),
            )
            return
        self._handles[execution.id] = handle
        if execution.id in self._stopping:
            await handle.stop()
        result = await handle.wait()
        await shipper.close()
        await self._finish(execution, node_id, self._outcome(execution, result, shipper))
        self._runner.discard(str(execution.id))

    def _cap(self, execution: Execution) -> int:
        return execution.run.output_cap or self._output_cap

    def _outcome(
        self, execution: Execution, result: runner.RunResult, shipper: OutputShipper
    ) -> Outcome:
        reason = result.error
        if result.state is runner.RunState.STOPPED:
            reason = self._stopping.get(execution.id, reason)
        if result.state is runner.RunState.TIMED_OUT:
            reason = f"timed out after {execution.run.timeout:g}s"
        return Outcome(
            state=RunState(result.state.value),
            exit_code=result.exit_code,
            signal=result.signal,
            reason=reason,
            finished_at=self._clock.now(),
            stdout_bytes=result.stdout_bytes,
            stderr_bytes=result.stderr_bytes,
            output_capped=shipper.capped or result.output_capped,
        )

    async def _finish(self, execution: Execution, node_id: UUID, outcome: Outcome) -> None:
        if not await self._finisher.finish(execution.id, node_id, outcome):
            log.warning("run %s was given away meanwhile; its result is dropped", execution.id)
