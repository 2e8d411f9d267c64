"""The node's side of fencing: the lease deadline on the monotonic clock, held twice.

Inside the node, `expired()` tells the worker that its runs are no longer covered. Outside
it, a supervisor process (`_supervisor.py`) holds the same deadline and SIGKILLs the runs'
process groups when it passes, or when the node dies, so a frozen or killed node's runs
are dead before the cluster may start their next attempt elsewhere.

A run costs three pipe writes: `add` at its start, `end` when its leader is reaped (its
exit status, which from then on only the node knows) and `end` with the full outcome
just before the commit. Its `done` (committed: forget it) rides on the node's next
write, a run's or the next lease renewal's (every TTL/3): until then the supervisor
still holds an end it may try to record, which the database refuses for a committed
run (the write requires ``state = 'running'``), so nothing it vouches for changes.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any
from uuid import UUID

from cronhive.model import Outcome, RunState

log = logging.getLogger(__name__)

_SUPERVISOR = Path(__file__).with_name("_supervisor.py")
_DONE_BATCH = 64  # pending `done` lines flushed on their own at this many


class Watchdog:
    """Holds this node's fencing deadline (seconds on `time.monotonic()`)."""

    def __init__(self, *, supervised: bool = True) -> None:
        self._deadline = float("inf")
        self._proc: subprocess.Popen[bytes] | None = None
        self._done: list[str] = []  # `done` lines for the next write
        # Held over each write: the lease keeper's thread writes too; lines never
        # interleave, and pending ones go out with exactly one write.
        self._lock = threading.Lock()
        if supervised:
            self._proc = subprocess.Popen(
                [sys.executable, "-I", str(_SUPERVISOR)],
                stdin=subprocess.PIPE,
                start_new_session=True,  # Ctrl-C at a terminal is for the node
                close_fds=True,
            )

    def hold_until(self, deadline: float) -> None:
        """The lease covers the runs until `deadline` (monotonic)."""
        self._deadline = deadline
        self._send(f"deadline {deadline:.6f}")

    def expired(self) -> bool:
        return time.monotonic() >= self._deadline

    def remaining(self) -> float:
        return self._deadline - time.monotonic()

    def record_to(self, database: dict[str, str], node_id: UUID, ttl: float) -> None:
        """Where the supervisor may write the ends this node could not (`database`:
        {"sqlite": path} or {"postgresql": url}); sent over the pipe, never argv."""
        self._send(f"ttl {ttl:.6f}")
        self._send("db " + json.dumps({**database, "node": str(node_id)}))

    def add(self, pgid: int, run: UUID | None = None) -> None:
        self._send(f"add {pgid}" + (f" {run}" if run is not None else ""))

    def ended(self, pgid: int, run: UUID, outcome: Outcome) -> None:
        """The run's leader is gone and this is its end, about to be committed: the
        group needs no guard, and the end is vouched for should the node not commit it
        in time. A run given up (`lost`) has no end to vouch for."""
        if outcome.state is RunState.LOST:
            self.remove(pgid)
            return
        self._end(
            pgid,
            run,
            {
                "state": str(outcome.state),
                "exit_code": outcome.exit_code,
                "signal": outcome.signal,
                "reason": outcome.reason,
                "stdout_bytes": outcome.stdout_bytes,
                "stderr_bytes": outcome.stderr_bytes,
                "output_capped": outcome.output_capped,
                "seen": "node",
            },
        )

    def reaped(
        self, pgid: int, run: UUID, state: RunState, exit_code: int | None, signal: int | None
    ) -> None:
        """The run's leader was just reaped (its output may still be draining): its exit
        status, which from now on only this node knows, goes to the supervisor at once."""
        if state is RunState.LOST:
            self.remove(pgid)
            return
        self._end(
            pgid,
            run,
            {"state": str(state), "exit_code": exit_code, "signal": signal, "seen": "exit"},
        )

    def _end(self, pgid: int, run: UUID, end: dict[str, Any]) -> None:
        self._send(f"end {pgid} {run} {json.dumps(end, separators=(',', ':'))}")

    def stopping(self, run: UUID, state: RunState) -> None:
        """The node is stopping the run (`stopped`, or `lost`: given up): its leader's
        exit is that, not the run's own end."""
        self._send(f"stopping {run} {state}")

    def settled(self, run: UUID) -> None:
        """The run's end is committed, or was refused: nothing left to vouch for. Told
        with the next line written (see the module docstring)."""
        if self._proc is None:
            return
        with self._lock:
            self._done.append(f"done {run}")
            if len(self._done) >= _DONE_BATCH:  # bounded, when no other line comes
                self._write_locked([])

    def remove(self, pgid: int) -> None:
        self._send(f"del {pgid}")

    def close(self) -> None:
        """Ends the supervisor (it kills whatever is still registered)."""
        if self._proc is None:
            return
        with self._lock:
            self._write_locked([])  # what is settled: no end to record at the pipe's close
        if self._proc is None:
            return
        proc, self._proc = self._proc, None
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def _send(self, line: str) -> None:
        if self._proc is None:
            return
        with self._lock:
            self._write_locked([line])

    def _write_locked(self, lines: list[str]) -> None:
        if self._done:
            lines, self._done = [*self._done, *lines], []
        if self._proc is None or self._proc.stdin is None or not lines:
            return
        data = memoryview("".join(f"{x}\n" for x in lines).encode())
        try:
            # Never blocks in practice (the supervisor reads at once); os.write keeps it
            # out of any buffer, the loop finishes a write a signal cut short.
            while data:
                data = data[os.write(self._proc.stdin.fileno(), data) :]
        except OSError:
            log.error("the fencing supervisor is gone; runs are not guarded outside the node")
            self._proc = None
