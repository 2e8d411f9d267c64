"""One node: scheduler loop + worker + reaper + heartbeat (+ the API), one task group.

Time is the database's (`DatabaseClock`, re-synced at every heartbeat). The lease: the
node renews its row every third of the TTL, each renewal bounded by the time the lease
has left; in `cronhive server` from the `LeaseKeeper`'s thread (engine/lease.py), so a
busy loop does not cost the lease, and only while this loop shows signs of life. Each
renewal moves the fencing deadline (TTL minus a margin after the renewal began, on the
monotonic clock) held by the `Watchdog` and its supervisor process, which kills the runs
if the deadline passes: before the cluster may reap them, even if this process is
frozen. When the store says the lease is gone (Fenced) the node gives its runs up
(`lost`) and registers again as a new node. Shutdown (SIGTERM): stop claiming, let
running runs finish for `drain_grace`, hand the rest over (`lost`, retried elsewhere at
once), leave the cluster (the node stays listed as down).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from pathlib import Path
from uuid import UUID

from cronhive import runner, sqljobs
from cronhive.blobs import BlobStore
from cronhive.blobs.scripts import ScriptCache
from cronhive.config import defaults
from cronhive.engine.clock import Clock, DatabaseClock
from cronhive.engine.hub import Hub
from cronhive.engine.lease import LeaseKeeper, Renewal, StoreFactory, renew_once
from cronhive.engine.retry import decide_retry
from cronhive.engine.scheduler import Scheduler
from cronhive.engine.watchdog import Watchdog
from cronhive.engine.worker import Worker
from cronhive.errors import CronhiveError
from cronhive.model import Node, Outcome
from cronhive.store import Store
from cronhive.store.base import RunCaps

log = logging.getLogger(__name__)

DEFAULT_OUTPUT_CAP = defaults.OUTPUT_CAP
_JUST_AFTER = timedelta(milliseconds=1)  # a lease is reapable once `expires <= now`
PULSE = 0.25  # seconds between the loop's signs of life to the lease keeper


@dataclass(frozen=True, kw_only=True)
class NodeConfig:
    name: str
    spool_dir: Path
    tags: frozenset[str] = frozenset()
    capacity: int = defaults.CAPACITY
    lease_ttl: float = defaults.LEASE_TTL
    lookahead: float = defaults.LOOKAHEAD  # slots armed this early (engine.scheduler)
    grace: float = defaults.GRACE  # SIGTERM->SIGKILL of a stop
    drain_grace: float = defaults.DRAIN_GRACE  # at shutdown, for runs to end before hand-over
    supervised: bool = True  # a supervisor process kills the runs if the lease lapses
    # Where that supervisor may record an end the node could not ({"sqlite": path} or
    # {"postgresql": url}); None: such runs are recorded lost and retried.
    database: dict[str, str] | None = None
    # Opens a second connection to the node's database for the lease keeper thread; None:
    # the lease is renewed on the node's own loop (tests with an injected clock).
    lease_store: StoreFactory | None = None
    output_cap: int = DEFAULT_OUTPUT_CAP
    sandbox: runner.Sandbox | None = None  # how runs are isolated (None: not at all)
    # Every run's limits on this node, and the ceilings of a job's own (engine.limits).
    limits: runner.Limits = runner.DEFAULT_LIMITS
    sql: sqljobs.SqlJobs | None = None  # target databases of SQL jobs (None: refused)
    caps: RunCaps | None = None  # per-owner caps on running runs (None: no caps)
    schedule: bool = True  # run the scheduler loop
    work: bool = True  # claim and run executions
    extra: tuple[Callable[[NodeContext], Coroutine[None, None, None]], ...] = field(default=())
    blobs: BlobStore | None = None  # scripts and the output archive (None: neither)
    script_max_bytes: int = defaults.SCRIPT_MAX_BYTES
    script_cache_dir: Path | None = None  # where fetched scripts are kept (verified)
    after_run: Callable[[UUID, Outcome], None] | None = None  # an end is recorded (archive)


@dataclass(kw_only=True)
class NodeContext:
    """What services started beside the engine (the API, the web UI) may use."""

    store: Store
    clock: Clock
    config: NodeConfig
    node: Node
    runner: runner.Runner
    hub: Hub  # wake-ups from every node, fanned out (see engine.hub)
    process: NodeProcess


class NodeProcess:
    def __init__(self, store: Store, config: NodeConfig, clock: Clock | None = None) -> None:
        self.store = store
        self.config = config
        self._db_clock: DatabaseClock | None = None
        if clock is None:
            clock = self._db_clock = DatabaseClock(store.database_time)
        self.clock: Clock = clock
        self.runner = runner.Runner(
            config.spool_dir,
            default_grace=config.grace,
            sandbox=config.sandbox,
            default_limits=config.limits,
        )
        self._node: Node | None = None
        self._stop = asyncio.Event()
        self.watchdog = Watchdog(supervised=config.supervised)
        self.worker = Worker(
            store,
            self.runner,
            self.clock,
            node_id=lambda: self.node.id,
            tags=config.tags,
            capacity=config.capacity if config.work else 0,
            output_cap=config.output_cap,
            watchdog=self.watchdog,
            node_name=config.name,
            sql=config.sql,
            scripts=(
                ScriptCache(config.blobs, config.script_cache_dir)
                if config.blobs is not None and config.script_cache_dir is not None
                else None
            ),
            on_finished=config.after_run,
            caps=config.caps,
        )
        self.runner.on_reaped = self.worker.leader_reaped
        self.scheduler: Scheduler | None = None
        self.ready = asyncio.Event()
        self._background: set[asyncio.Task[None]] = set()
        self.hub = Hub()
        self._keeper: LeaseKeeper | None = None
        self._renewals: asyncio.Queue[Renewal] = asyncio.Queue()

    @property
    def node(self) -> Node:
        assert self._node is not None, "node not registered yet"
        return self._node

    def shutdown(self) -> None:
        """Asks the node to stop (what SIGTERM does)."""
        self._stop.set()

    async def run(self) -> None:
        """Runs the node until `shutdown()`; raises if the store refuses to register it."""
        try:
            await self._run()
        finally:
            if self._keeper is not None:
                await asyncio.to_thread(self._keeper.close)
            self.watchdog.close()

    async def _run(self) -> None:
        await self._sync_clock()
        await self._register()
        await self._start_keeper()
        ctx = NodeContext(
            store=self.store,
            clock=self.clock,
            config=self.config,
            node=self.node,
            runner=self.runner,
            hub=self.hub,
            process=self,
        )
        try:
            async with asyncio.TaskGroup() as tg:
                services = [
                    tg.create_task(self._heartbeat(), name="heartbeat"),
                    tg.create_task(self._reaper(), name="reaper"),
                    tg.create_task(self._listen(), name="listener"),
                ]
                producers = []  # what makes new work on this node; stopped first
                if self.config.work:
                    producers.append(tg.create_task(self.worker.run(), name="worker"))
                if self.config.schedule:
                    self.scheduler = Scheduler(
                        self.store,
                        self.clock,
                        self.worker if self.config.work else None,
                        self.node.id,
                        lookahead=self.config.lookahead if self.config.work else 0.0,
                    )
                    producers.append(tg.create_task(self.scheduler.run(), name="scheduler"))
                for start in self.config.extra:
                    name = getattr(start, "__name__", "extra")
                    services.append(tg.create_task(start(ctx), name=name))
                self.ready.set()
                await self._stop.wait()
                # Claim and fire nothing more, then let what runs finish (the heartbeat
                # keeps the lease meanwhile), then the rest.
                self.worker.stop_claiming()
                if self.scheduler is not None:
                    self.scheduler.stop()
                await asyncio.gather(*producers)
                await self._drain()
                for task in services:
                    task.cancel()
        except BaseExceptionGroup as group:
            # A service that could not start (a port in use) is one clear error, not a
            # group of tracebacks.
            first = _first_cronhive_error(group)
            if first is None:
                raise
            raise first from None
        finally:
            await self.runner.stop_all(grace=1.0)
            await self.worker.close()
            if self._keeper is not None:
                self._keeper.hold(None)  # a renewal after leaving would only fail
            try:
                await self.store.deregister_node(self.node.id, now=self.clock.now())
                log.info("node %s left the cluster", self.node.name)
            except CronhiveError:
                log.warning("could not deregister node %s", self.node.name)

    async def _sync_clock(self) -> None:
        if self._db_clock is not None:
            await self._db_clock.sync()

    def _margin(self) -> float:
        """How long before the lease's end the runs are killed: the old copy must be dead
        before any other node may reap the lease and start the next attempt."""
        return max(0.5, self.config.lease_ttl / 5)

    async def _register(self) -> None:
        began = time.monotonic()
        self._node = await self.store.register_node(
            name=self.config.name,
            tags=self.config.tags,
            capacity=self.config.capacity,
            ttl=self.config.lease_ttl,
            now=self.clock.now(),
        )
        self.watchdog.hold_until(began + self.config.lease_ttl - self._margin())
        if self.config.database is not None:
            self.watchdog.record_to(self.config.database, self._node.id, self.config.lease_ttl)
        if self.scheduler is not None:
            self.scheduler.node_id = self._node.id
        if self._keeper is not None:
            self._keeper.hold(self._node.id)
        log.info("node %s (%s) joined", self._node.name, self._node.id)

    async def _drain(self) -> None:
        self.worker.claiming = False
        running = len(self.worker.running())
        grace = self.config.drain_grace
        log.info("draining: claiming stopped; %d runs have %gs to end", running, grace)
        if not await self.worker.drain(grace):
            left = len(self.worker.running())
            log.warning("handing over %d runs to the cluster (retried elsewhere)", left)
            await self.worker.stop_all(
                "node shutting down; handed over", grace=self.config.grace, lost=True
            )
            await self.worker.drain(self.config.grace + 5)
        log.info("drained")

    async def _start_keeper(self) -> None:
        open_store = self.config.lease_store
        if open_store is None or self._db_clock is None:
            return
        loop = asyncio.get_running_loop()
        keeper = LeaseKeeper(
            open_store,
            ttl=self.config.lease_ttl,
            margin=self._margin(),
            watchdog=self.watchdog,
            clock=self._db_clock,
            deliver=partial(_deliver, loop, self._renewals),
        )
        await asyncio.to_thread(keeper.start)
        keeper.hold(self.node.id)
        self._keeper = keeper

    async def _heartbeat(self) -> None:
        if self._keeper is None:
            await self._heartbeat_here()
            return
        keeper = self._keeper
        pulse = asyncio.create_task(self._pulse(keeper), name="pulse")
        try:
            while True:
                renewal = await self._renewals.get()
                if renewal.node_id == self.node.id:  # not one from before a re-registration
                    await self._renewed(renewal)
        finally:
            pulse.cancel()

    async def _pulse(self, keeper: LeaseKeeper) -> None:
        # The keeper renews only while this loop runs: a stuck node must lose its runs.
        while True:
            keeper.pulse()
            await asyncio.sleep(PULSE)

    async def _heartbeat_here(self) -> None:
        """Renewal on this loop, for nodes without a keeper thread."""
        ttl = self.config.lease_ttl
        wake = asyncio.Event()
        while True:
            await self.clock.sleep_until(self.clock.now() + timedelta(seconds=ttl / 3), wake)
            renewal = await renew_once(
                self.store,
                self.node.id,
                ttl=ttl,
                margin=self._margin(),
                watchdog=self.watchdog,
                clock=self.clock,
                sync=self._sync_clock,
            )
            await self._renewed(renewal)

    async def _renewed(self, renewal: Renewal) -> None:
        """Acts on what a renewal brought back."""
        if renewal.fenced:
            await self._fence("the cluster expired this node's lease")
            try:
                await self._register()
            except CronhiveError as exc:
                log.warning("registering again failed: %s", exc)
                if self._keeper is not None:
                    # It renews nothing until a registration succeeds: try again soon.
                    await asyncio.sleep(0.2)
                    self._renewals.put_nowait(renewal)
            return
        if renewal.error is not None:
            log.warning("lease renewal failed: %s", renewal.error)
            if self.watchdog.remaining() <= self.config.lease_ttl / 6:
                # The lease is about to lapse and the runs may be given away: end them
                # now (the supervisor kills what is left at the deadline).
                await self._fence("lease could not be renewed")
            return
        for execution_id in renewal.stops:
            # In the background: a stop waits up to its grace, far longer than a renewal
            # may take (the lease would lapse and take every other run with it).
            self._spawn(self.worker.stop(execution_id, "stop requested"))
        try:
            await self.worker.reconcile(await self.store.running_on(renewal.node_id))
        except CronhiveError as exc:
            log.warning("checking this node's runs failed: %s", exc)

    def _spawn(self, work: Coroutine[None, None, None]) -> None:
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _fence(self, why: str) -> None:
        running = self.worker.running()
        if running:
            log.error("%s: giving up %d runs (lost, retried elsewhere)", why, len(running))
            await self.worker.stop_all(f"fenced: {why}", grace=1.0, lost=True)

    async def _reaper(self) -> None:
        wake = asyncio.Event()
        # Often, so that failover takes little more than the lease TTL; and at the very
        # instant a lease lapses when one lapses sooner (a dead node's runs move on then,
        # not up to a period later).
        period = timedelta(seconds=min(1.0, self.config.lease_ttl / 4))
        until = self.clock.now() + period
        while True:
            await self.clock.sleep_until(until, wake)
            now = self.clock.now()
            until = now + period
            try:
                lost = await self.store.reap(now=now, retry=decide_retry)
                leases = [
                    n.lease_expires_at
                    for n in await self.store.list_nodes(now=now)
                    if n.id != self.node.id and n.alive(now)
                ]
            except CronhiveError as exc:
                log.warning("reaping failed: %s", exc)
                until = now + timedelta(seconds=0.2)  # deadlock or outage: again soon
                continue
            if leases:
                until = min(until, min(leases) + _JUST_AFTER)
            if lost:
                log.warning("reaped %d lost runs", len(lost))
                self.worker.wake()

    async def _listen(self) -> None:
        while True:
            try:
                async with self.store.listen() as notes:
                    async for note in notes:
                        self._dispatch(note.topic, note.key)
            except CronhiveError as exc:
                log.warning("listening for notifications failed (%s); retrying", exc)
                await asyncio.sleep(0.5)

    def _dispatch(self, topic: str, key: str) -> None:
        self.hub.publish(topic, key)
        if topic == "jobs" and self.scheduler is not None:
            self.scheduler.wake()
        elif topic == "runs":
            self.worker.wake()
        elif topic == "stop":
            try:
                execution_id = UUID(key)
            except ValueError:
                return
            if execution_id in self.worker.running():
                self._spawn(self.worker.stop(execution_id, "stop requested"))


def _deliver(
    loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[Renewal], renewal: Renewal
) -> None:
    with contextlib.suppress(RuntimeError):  # the node's loop is gone: nobody to tell
        loop.call_soon_threadsafe(queue.put_nowait, renewal)


def _first_cronhive_error(group: BaseExceptionGroup[BaseException]) -> CronhiveError | None:
    for exc in group.exceptions:
        if isinstance(exc, CronhiveError):
            return exc
        if isinstance(exc, BaseExceptionGroup):
            found = _first_cronhive_error(exc)
            if found is not None:
                return found
    return None
