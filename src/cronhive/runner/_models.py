"""The runner's model: what to run, what came of it, and the output seam."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Protocol


class RunState(StrEnum):
    """Where a run is. Every state but RUNNING is terminal."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    STOPPED = "stopped"

    @property
    def terminal(self) -> bool:
        return self is not RunState.RUNNING


class Stream(StrEnum):
    """One of the two output streams of a run."""

    STDOUT = "stdout"
    STDERR = "stderr"


@dataclass(frozen=True, kw_only=True)
class Limits:
    """Resource limits of one run; ``None`` leaves a resource as it is.

    ``memory_bytes``: cgroup ``memory.max`` (whole tree) or RLIMIT_AS (per process).
    ``cpu_seconds``: cgroup ``cpu.max`` is a rate, not a budget, so CPU time is always
    RLIMIT_CPU (per process: SIGXCPU at the limit, SIGKILL one second later).
    ``processes`` (RLIMIT_NPROC: counted per uid on the whole host, so a cap per user, not
    per run), ``open_files`` (RLIMIT_NOFILE), ``file_bytes`` (RLIMIT_FSIZE, largest file a
    process may write), ``core_bytes`` (RLIMIT_CORE; 0: no core dumps): per process,
    inherited, soft = hard. Where the run has a cgroup v2 group (see ``Runner``),
    ``processes`` is also its ``pids.max`` (the whole tree) and ``cpu_weight`` (1-10000,
    the kernel's default 100) its ``cpu.weight`` against the other runs.
    """

    memory_bytes: int | None = None
    cpu_seconds: int | None = None
    processes: int | None = None
    open_files: int | None = None
    file_bytes: int | None = None
    core_bytes: int | None = None
    cpu_weight: int | None = None

    def merged(self, over: Limits | None) -> Limits:
        """These limits with every field ``over`` sets taken from ``over``."""
        if over is None:
            return self
        return Limits(**{f: getattr(over, f) if getattr(over, f) is not None else getattr(self, f)
                         for f in LIMIT_FIELDS})  # fmt: skip


LIMIT_FIELDS = (
    "memory_bytes", "cpu_seconds", "processes", "open_files", "file_bytes", "core_bytes",
    "cpu_weight",
)  # fmt: skip
# What every run gets unless the runner is told otherwise (Runner(default_limits=...)).
DEFAULT_LIMITS = Limits(processes=4096, open_files=8192, file_bytes=16 << 30, core_bytes=0)


@dataclass(frozen=True, kw_only=True)
class RunSpec:
    """What to run.

    ``argv`` is executed directly (``argv[0]`` looked up on the run's PATH). With
    ``shell=True``, ``argv[0]`` is a script for ``/bin/sh -c`` and ``argv[1:]`` become
    ``$1...``. ``env`` is added to a minimal clean base, never to the node's environment.
    ``timeout`` stops the run (state TIMED_OUT); ``grace`` is the SIGTERM->SIGKILL delay
    for this run (the runner's default when ``None``). ``output_cap``: bytes of output
    (both streams together) kept in the spool, and so given to followers and the sink;
    past it the run goes on, its output is read and dropped, and the result says
    ``output_capped`` (None: no cap).
    """

    run_id: str
    argv: Sequence[str]
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None
    shell: bool = False
    user: str | None = None
    group: str | None = None
    timeout: float | None = None
    grace: float | None = None
    limits: Limits | None = None
    job_name: str | None = None
    output_cap: int | None = None
    # Files the run must read although the sandbox hides their folder (its script).
    expose: tuple[Path, ...] = ()


@dataclass(frozen=True, kw_only=True)
class RunResult:
    """The outcome of a finished run.

    Death by signal: ``signal`` is the number and ``exit_code`` is ``None``. A run that
    could not start is FAILED with ``error`` set and neither code nor signal.
    ``limits_applied`` is ``"cgroup"``, ``"rlimit"`` or ``None`` (no limits asked).
    The byte counts are what the run wrote to each stream; without ``output_capped``
    the spool holds all of it, with it (more than ``RunSpec.output_cap`` was written) the
    spool holds the first ``output_cap`` bytes of both together.
    """

    state: RunState
    exit_code: int | None
    signal: int | None
    error: str | None
    started_at: datetime
    finished_at: datetime
    limits_applied: str | None
    stdout_bytes: int
    stderr_bytes: int
    output_capped: bool = False


@dataclass(frozen=True, kw_only=True)
class Chunk:
    """A piece of output: ``offset`` within its stream, ``seq`` global per run from 0."""

    stream: Stream
    offset: int
    seq: int
    data: bytes


class OutputSink(Protocol):
    """Receives a run's output in the order it was read, then ``close()`` once.

    Calls are strictly sequential (never concurrent). A slow sink slows the reading of
    the pipes (the runner buffers a bounded amount, then stops reading), so a sink
    should be quick; followers are never affected. An exception from ``write`` detaches
    the sink (logged; the output is still in the spool) and ``close`` is still called.
    """

    async def write(self, chunk: Chunk) -> None: ...

    async def close(self) -> None: ...
