"""The fencing supervisor: a tiny process beside each node that kills the node's runs
when the node can no longer vouch for them, and vouches for the ends the node saw but
could not record.

It lives outside the node's process because the node is what may fail: a node stopped
by SIGSTOP, stuck in a loop, or waiting on a connection that never answers cannot kill
anything. The node tells it, over a pipe on its stdin, one line at a time:

    deadline <t>            the lease holds until <t> on CLOCK_MONOTONIC (minus a margin)
    ttl <s>                 the lease's length
    db <json>               where this node's runs are recorded: {"node": id} and either
                            "sqlite" (a file path) or "postgresql" (a libpq URL)
    add <pgid> [<run>]      a run's process group was started (its leader's pid is pgid)
    end <pgid> <run> <json> the run ended with this outcome, not yet committed
    stopping <run> <state>  the node is stopping the run (state: stopped, timed_out, lost)
    done <run>              its end is committed (or was refused): nothing left to vouch
                            (sent with the node's next line, see watchdog.py)
    del <pgid>              that run ended with nothing to vouch for

When the deadline passes without a newer one, every registered group gets SIGKILL (so
the old copies are dead before another node may start the next attempt), and groups
added while the deadline is past are killed at once. When the pipe closes (the node
exited or was killed), every registered group gets SIGKILL and the supervisor exits.

Ends: a run that finished while the node was frozen, or whose end the node had but did
not commit before it died, must not be recorded `lost` and run again. So the supervisor
watches each leader (a pidfd) and reads its wait status from /proc while it is a zombie
nobody reaped, and keeps the ends the node reported until they are `done`. Once less
than a third of the lease is left (a renewal is late by a whole interval), or the node is gone,
it writes each such end into the run's row (`executions.witness`), only while the lease
still holds in the database; the reaper records it instead of `lost`.
Standard library only, but for psycopg when the node is on PostgreSQL (imported when a
first end must be written): it starts in milliseconds and depends on nothing else.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import select
import signal
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any


def _say(text: str) -> None:
    sys.stderr.write(f"cronhive supervisor: {text}\n")
    sys.stderr.flush()


def zombie_status(pid: int) -> int | None:
    """The wait status of `pid` if it is a zombie whose status we may read, else None.

    /proc/<pid>/stat shows the exit code (field 52) only to a reader the kernel lets
    inspect the process, and shows 0 to others: for a zombie that is a reader with the
    same uid, or root, so anything else is refused here rather than read as success."""
    try:
        owner = os.stat(f"/proc/{pid}").st_uid
        with open(f"/proc/{pid}/stat", "rb") as f:
            text = f.read().decode("ascii", "replace")
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    if fields[0] != "Z" or len(fields) < 50:
        return None
    if os.geteuid() not in (0, owner):
        return None
    return int(fields[49])


def outcome_of(status: int) -> dict[str, Any]:
    """What the node would have recorded for a leader's raw wait status."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        return {"state": "failed", "signal": sig, "reason": f"killed by signal {sig}"}
    code = os.WEXITSTATUS(status)
    return {"state": "succeeded" if code == 0 else "failed", "exit_code": code}


class Writer:
    """Writes ends into the database from a thread of its own, so that no write, however
    slow, delays a kill. Each write is conditional on the node's lease in the database."""

    def __init__(self) -> None:
        self.target: dict[str, str] | None = None
        # An end to write; None: a new target; "stop".
        self._todo: queue.Queue[tuple[str, dict[str, Any]] | str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._work, daemon=True)
        self._thread.start()

    def put(self, run: str, end: dict[str, Any]) -> None:
        self._todo.put((run, end))

    def aim(self, target: dict[str, str]) -> None:
        """Where to write; the connection is opened now, while nothing is urgent."""
        self.target = target
        self._todo.put(None)

    def close(self, within: float) -> None:
        self._todo.put("stop")
        self._thread.join(within)

    def _work(self) -> None:
        conn: Any = None
        while (item := self._todo.get()) != "stop":
            if not isinstance(item, tuple):  # a new target: connect ahead of need
                _close(conn)
                conn = None
                with contextlib.suppress(Exception):
                    conn = self._connect()
                continue
            run, end = item
            until = time.monotonic() + 5.0
            while True:
                try:
                    if conn is None:
                        conn = self._connect()
                    # Not written: the node committed it meanwhile, or the lease is over.
                    if self._write(conn, run, end):
                        _say(f"run {run}: its end is recorded for the node ({end})")
                    break
                except Exception as exc:  # reported, then retried or given up
                    _close(conn)
                    conn = None
                    if time.monotonic() > until:
                        _say(f"run {run}: could not record its end: {exc}")
                        break
                    time.sleep(0.2)
        _close(conn)

    def _connect(self) -> Any:
        target = self.target
        if target is None:
            raise RuntimeError("no database given")
        if "postgresql" in target:
            import psycopg

            return psycopg.connect(
                target["postgresql"],
                autocommit=True,
                connect_timeout=2,
                application_name="cronhive supervisor",
                options="-c statement_timeout=2000 -c lock_timeout=1500",
            )
        import sqlite3

        return sqlite3.connect(target["sqlite"], timeout=2.0, isolation_level=None)

    def _write(self, conn: Any, run: str, end: dict[str, Any]) -> bool:
        assert self.target is not None
        node, payload = self.target["node"], json.dumps(end)
        if "postgresql" in self.target:
            cur = conn.execute(
                "UPDATE executions SET witness = %s::jsonb"
                " WHERE id = %s AND node_id = %s AND state = 'running' AND witness IS NULL"
                " AND EXISTS (SELECT 1 FROM nodes WHERE id = %s AND down_since IS NULL"
                " AND lease_expires_at > clock_timestamp())",
                (payload, run, node, node),
            )
        else:
            # SQLite (one node): the database's clock is this machine's; ids are hex.
            now_us = time.time_ns() // 1000
            run_hex, node_hex = run.replace("-", ""), node.replace("-", "")
            cur = conn.execute(
                "UPDATE executions SET witness = ?"
                " WHERE id = ? AND node_id = ? AND state = 'running' AND witness IS NULL"
                " AND EXISTS (SELECT 1 FROM nodes WHERE id = ? AND down_since IS NULL"
                " AND lease_expires_at > ?)",
                (payload, run_hex, node_hex, node_hex, now_us),
            )
        return bool(cur.rowcount)


def _close(conn: Any) -> None:
    if conn is not None:
        with contextlib.suppress(Exception):  # a broken connection is being dropped
            conn.close()


@dataclass
class Run:
    """What the supervisor holds for one run, from its `add` until its end is `done` (or
    it is `del`eted, or killed at the deadline)."""

    pgid: int  # its process group (its leader's pid)
    run: str | None  # None: a group registered without a run (nothing to vouch for)
    guarded: bool = True  # killed at the deadline; False once its end is reported
    end: dict[str, Any] | None = None  # the end not yet committed
    stopping: dict[str, Any] | None = None  # how the node is ending it
    vouched: bool = False  # the end was handed to the writer


class Supervisor:
    def __init__(self, fd: int) -> None:
        self.fd = fd
        # The one map of what is held, by run id ("#<pgid>" for a group without a run):
        # an ended run waiting for its commit keeps its entry though its pid is reused.
        self.runs: dict[str, Run] = {}
        self.leaders: dict[int, str] = {}  # pidfd -> key in runs, while a leader is watched
        self.deadline = float("inf")
        self.ttl: float | None = None
        self.node = os.getppid()  # the node process: its death ends everything
        self.writer = Writer()

    def urgent_at(self) -> float:
        """When the node counts as late: ends still open then are written."""
        if self.ttl is None or self.writer.target is None:
            return float("inf")
        return self.deadline - self.ttl / 3

    def serve(self) -> None:
        buffer = b""
        while True:
            now = time.monotonic()
            if self.deadline <= now:
                self._fence("lease deadline passed")
            if self.urgent_at() <= now:
                self._vouch()
            # Past the deadline (or before the first) there is nothing to time until a
            # newer one arrives.
            times = (self.deadline, self.urgent_at())
            wake = min((t for t in times if now < t < float("inf")), default=None)
            ready, _, _ = select.select(
                [self.fd, *self.leaders], [], [], None if wake is None else wake - now
            )
            for pidfd in ready:
                if pidfd != self.fd:
                    self._leader_exited(pidfd)
            if self.fd not in ready:
                continue
            data = os.read(self.fd, 65536)
            if not data:
                self._vouch()
                self._kill("node gone")
                self.writer.close(within=5.0)
                return
            buffer += data
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                self._line(line.decode())

    def _line(self, line: str) -> None:
        verb, _, arg = line.partition(" ")
        if verb == "deadline":
            self.deadline = float(arg)
        elif verb == "ttl":
            self.ttl = float(arg)
        elif verb == "db":
            self.writer.aim(json.loads(arg))
        elif verb == "add":
            pgid_text, _, run = arg.partition(" ")
            pgid = int(pgid_text)
            key = run or f"#{pgid}"
            self._drop(key)
            self.runs[key] = Run(pgid, run or None)
            if run:
                # Already reaped (OSError): the node, which did, reports the end itself.
                with contextlib.suppress(OSError):
                    self.leaders[os.pidfd_open(pgid)] = key
            if time.monotonic() >= self.deadline:
                self._fence("run started after the lease deadline")
        elif verb == "end":
            pgid_text, run, end = arg.split(" ", 2)
            self._unwatch(run)
            held = self.runs.setdefault(run, Run(int(pgid_text), run))  # anew after a kill
            held.guarded, held.end = False, json.loads(end)
        elif verb == "stopping":
            # The node is stopping the run: its leader's exit is that stop, not a failure.
            run, state = arg.split(" ", 1)
            if run in self.runs:
                reason = "stopped (its node froze meanwhile)"
                self.runs[run].stopping = {"state": state, "reason": reason}
        elif verb == "done":
            self._drop(arg)
        elif verb == "del":
            # The newest run on that group: an older one may wait for its commit there.
            pgid = int(arg)
            newest = next((k for k in reversed(self.runs) if self.runs[k].pgid == pgid), None)
            if newest is not None:
                self._drop(newest)

    def _unwatch(self, key: str) -> None:
        for pidfd, watched in list(self.leaders.items()):
            if watched == key:
                del self.leaders[pidfd]
                os.close(pidfd)

    def _drop(self, key: str) -> None:
        self._unwatch(key)
        self.runs.pop(key, None)

    def _leader_exited(self, pidfd: int) -> None:
        held = self.runs.get(self.leaders.pop(pidfd))
        os.close(pidfd)
        # Only a frozen node's leaders end on their own: a dying node takes its leaders
        # with it (the sandbox dies with its parent), which is no end of theirs.
        if held is None or held.run is None or held.end is not None or not self._node_alive():
            return
        status = zombie_status(held.pgid)
        stop = held.stopping or {}
        if status is not None and stop.get("state") != "lost":  # a run given up is lost
            held.end = {**outcome_of(status), "seen": "supervisor", **stop}

    def _node_alive(self) -> bool:
        if os.getppid() != self.node:
            return False
        try:
            with open(f"/proc/{self.node}/stat", "rb") as f:
                text = f.read().decode("ascii", "replace")
        except OSError:
            return False
        return text[text.rindex(")") + 2 :][:1] not in ("Z", "X")

    def _fence(self, why: str) -> None:
        # A leader that exited on its own just now is read first; then the watches end,
        # since a leader killed here exits by our SIGKILL, which is not the run's end.
        if self.leaders:
            ready, _, _ = select.select(list(self.leaders), [], [], 0)
            for pidfd in ready:
                self._leader_exited(pidfd)
        for pidfd in list(self.leaders):
            del self.leaders[pidfd]
            os.close(pidfd)
        self._vouch()
        self._kill(why)

    def _vouch(self) -> None:
        for held in self.runs.values():
            if held.run is not None and held.end is not None and not held.vouched:
                held.vouched = True
                self.writer.put(held.run, held.end)

    def _kill(self, why: str) -> None:
        """SIGKILL to every guarded group, which is then forgotten: its end, if it had
        one, was handed to the writer just before."""
        killed = [key for key, held in self.runs.items() if held.guarded]
        for key in killed:
            with contextlib.suppress(OSError):
                os.killpg(self.runs.pop(key).pgid, signal.SIGKILL)
        if killed:
            _say(f"{why}: killed {len(killed)} run(s)")


def supervise(fd: int) -> None:
    Supervisor(fd).serve()


if __name__ == "__main__":
    # Terminal signals meant for the node (Ctrl-C) must not end the guard early.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    supervise(sys.stdin.fileno())
