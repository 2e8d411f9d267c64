"""What /proc says of processes, for tests that check one is gone. A zombie (killed, not
yet reaped by a frozen or stuck parent) counts as gone."""

from __future__ import annotations

import os
from pathlib import Path


def stat(pid: int) -> tuple[str, str, int] | None:
    """(command name, state letter, parent pid) of `pid`; None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    end = text.rindex(")")  # the name may hold spaces and parentheses
    state, ppid = text[end + 2 :].split()[:2]
    return text[text.index("(") + 1 : end], state, int(ppid)


def alive(pid: int) -> bool:
    found = stat(pid)
    return found is not None and found[1] not in ("Z", "X")


def descendants(root: int) -> dict[int, tuple[str, str]]:
    """pid -> (command name, state letter) of every process below `root`."""
    parents: dict[int, int] = {}
    about: dict[int, tuple[str, str]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (found := stat(int(entry))) is not None:
            about[int(entry)] = found[:2]
            parents[int(entry)] = found[2]
    below = {}
    for pid in about:
        p = parents.get(pid, 0)
        while p > 1 and p != root:
            p = parents.get(p, 0)
        if p == root:
            below[pid] = about[pid]
    return below
