"""The fencing supervisor: a tiny process beside each node that kills the node's runs
when the node can no longer vouch for them.

It lives outside the node's process because the node is what may fail: a node stopped
by SIGSTOP, stuck in a loop, or waiting on a connection that never answers cannot kill
anything. The node tells it, over a pipe on its stdin, one line at a time:

    deadline <t>   the lease holds until <t> on CLOCK_MONOTONIC (minus the node's margin)
    add <pgid>     a run's process group was started
    del <pgid>     that run ended

When the deadline passes without a newer one, every registered group gets SIGKILL (so
the old copies are dead before another node may start the next attempt), and groups
added while the deadline is past are killed at once. When the pipe closes (the node
exited or was killed), every registered group gets SIGKILL and the supervisor exits.
Standard library only: it starts in milliseconds and depends on nothing of the node.
"""

from __future__ import annotations

import os
import select
import signal
import sys
import time


def _kill(groups: set[int], why: str) -> None:
    for pgid in sorted(groups):
        try:
            os.killpg(pgid, signal.SIGKILL)
        except OSError:
            continue
    if groups:
        sys.stderr.write(f"cronhive supervisor: {why}: killed {len(groups)} run(s)\n")
        sys.stderr.flush()
    groups.clear()


def supervise(fd: int) -> None:
    groups: set[int] = set()
    deadline = float("inf")
    buffer = b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            _kill(groups, "lease deadline passed")
        # Past the deadline (or before the first) there is nothing to time until a newer
        # one arrives.
        timed = 0 < left < float("inf")
        ready, _, _ = select.select([fd], [], [], left if timed else None)
        if not ready:
            continue
        data = os.read(fd, 65536)
        if not data:
            _kill(groups, "node gone")
            return
        buffer += data
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            verb, _, arg = line.decode().partition(" ")
            if verb == "deadline":
                deadline = float(arg)
            elif verb == "add":
                groups.add(int(arg))
                if time.monotonic() >= deadline:
                    _kill(groups, "run started after the lease deadline")
            elif verb == "del":
                groups.discard(int(arg))


if __name__ == "__main__":
    # Terminal signals meant for the node (Ctrl-C) must not end the guard early.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    supervise(sys.stdin.fileno())
