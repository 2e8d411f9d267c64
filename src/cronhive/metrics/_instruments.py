"""What a node measures, in one Prometheus registry per node process.

The engine does not know about metrics: `Metrics.instrument` wraps the coroutine methods
of the node's store instance (every database call is timed and its errors counted; run
ends, claims and lease renewals are read off their results) at the composition root.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from cronhive.engine.worker import Worker
from cronhive.model import Execution
from cronhive.store import Store

__all__ = ["Metrics", "owner_class"]

# Seconds: from a slot's instant to its run being queued (fire lag) or started (start lag).
_LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
_DB_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)
QUEUE_DEPTH_CAP = 10_000  # queued runs counted per scrape at most (one bounded query)


def owner_class(owner: str) -> str:
    """`user` or `group`: a label of bounded cardinality (owner names are not labels)."""
    return owner.partition(":")[0] if ":" in owner else "user"


def _kind(execution: Execution) -> str:
    return "adhoc" if execution.job_id is None else "scheduled"


class Metrics:
    """The instruments of one node. `registry` is what /metrics exposes."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.runs_finished = Counter(
            "cronhive_runs_finished",
            "Runs this node ended, by final state, owner class and kind.",
            ["state", "owner_class", "kind"],
            registry=r,
        )
        self.runs_lost = Counter(
            "cronhive_runs_reaped", "Runs of dead nodes this node marked lost.", registry=r
        )
        self.runs_started = Counter(
            "cronhive_runs_started",
            "Runs this node started, by owner class and kind.",
            ["owner_class", "kind"],
            registry=r,
        )
        self.fire_lag = Histogram(
            "cronhive_fire_lag_seconds",
            "Scheduled runs: from the slot's instant to the run being queued.",
            buckets=_LAG_BUCKETS,
            registry=r,
        )
        self.start_lag = Histogram(
            "cronhive_start_lag_seconds",
            "From the moment a run could start (slot or retry backoff end) to its process"
            " (or statement) starting.",
            buckets=_LAG_BUCKETS,
            registry=r,
        )
        self.output_bytes = Counter(
            "cronhive_output_bytes",
            "Output bytes of the runs this node ended, by stream.",
            ["stream"],
            registry=r,
        )
        self.queue_depth = Gauge(
            "cronhive_queue_depth",
            f"Queued runs in the cluster at the last scrape (counted up to {QUEUE_DEPTH_CAP}).",
            registry=r,
        )
        self.running = Gauge("cronhive_runs_running", "Runs running on this node.", registry=r)
        self.lease_renewals = Counter(
            "cronhive_lease_renewals", "Lease renewals that succeeded.", registry=r
        )
        self.lease_misses = Counter(
            "cronhive_lease_renewal_failures",
            "Lease renewals that failed (database error, timeout or fenced).",
            registry=r,
        )
        self.lease_held = Gauge(
            "cronhive_lease_held", "1 while this node holds its lease, else 0.", registry=r
        )
        self.db_latency = Histogram(
            "cronhive_db_call_seconds",
            "Duration of store calls, by operation.",
            ["op"],
            buckets=_DB_BUCKETS,
            registry=r,
        )
        self.db_errors = Counter(
            "cronhive_db_call_errors",
            "Store calls that raised, by operation and error type.",
            ["op", "error"],
            registry=r,
        )
        self.deliveries = Counter(
            "cronhive_deliveries",
            "Reactions delivered (webhook, mail, chained job), by kind and result.",
            ["kind", "result"],
            registry=r,
        )

    # --- observations ----------------------------------------------------------------

    def started(self, executions: Iterable[Execution]) -> None:
        for ex in executions:
            self.runs_started.labels(owner_class(ex.owner), _kind(ex)).inc()
            if ex.job_id is not None and ex.attempt == 1:
                self.fire_lag.observe(max(0.0, _seconds(ex.queued_at, ex.scheduled_for)))

    def began(self, execution: Execution, at: datetime) -> None:
        """The run's process was let go at `at` (a run armed ahead of its slot is
        recorded as started at the slot, whenever its process really started)."""
        ready = max(execution.scheduled_for, execution.not_before)
        self.start_lag.observe(max(0.0, _seconds(at, ready)))

    def finished(self, execution: Execution) -> None:
        self.runs_finished.labels(
            execution.state.value, owner_class(execution.owner), _kind(execution)
        ).inc()
        self.output_bytes.labels("stdout").inc(execution.stdout_bytes)
        self.output_bytes.labels("stderr").inc(execution.stderr_bytes)

    # --- wiring ----------------------------------------------------------------------

    def instrument(self, store: Store) -> None:
        """Wraps every public coroutine method of `store` (this instance only)."""
        for name, _ in inspect.getmembers(type(store), inspect.iscoroutinefunction):
            if not name.startswith("_"):
                setattr(store, name, self._timed(name, getattr(store, name)))

    def instrumenting(
        self, open_store: Callable[[], Coroutine[Any, Any, Store]]
    ) -> Callable[[], Coroutine[Any, Any, Store]]:
        """A store factory whose stores are instrumented (the lease keeper opens its own
        store, on its own thread: the instruments are thread-safe)."""

        async def opened() -> Store:
            store = await open_store()
            self.instrument(store)
            return store

        return opened

    def instrument_worker(self, worker: Worker) -> None:
        """Counts the runs `worker` starts, claimed by it or by the scheduler's fast path
        (both hand them to `Worker.adopt`)."""
        adopt = worker.adopt

        @functools.wraps(adopt)
        def adopting(executions: list[Execution]) -> None:
            adopt(executions)
            self.started(executions)

        worker.adopt = adopting  # type: ignore[method-assign]
        worker.on_started = self.began

    def _timed(self, op: str, call: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        latency = self.db_latency.labels(op)

        @functools.wraps(call)
        async def timed(*args: Any, **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                result = await call(*args, **kwargs)
            except Exception as exc:
                self.db_errors.labels(op, type(exc).__name__).inc()
                if op == "renew_lease":
                    self.lease_misses.inc()
                raise
            finally:
                latency.observe(time.perf_counter() - began)
            self._observe(op, result)
            return result

        return timed

    def _observe(self, op: str, result: Any) -> None:
        if op == "renew_lease":
            self.lease_renewals.inc()
        elif op == "finish":
            self.finished(result[0])
        elif op == "finish_many":
            for entry in result:
                if entry is not None:
                    self.finished(entry[0])
        elif op == "reap":
            self.runs_lost.inc(len(result))


def _seconds(later: datetime, earlier: datetime) -> float:
    return (later - earlier).total_seconds()
