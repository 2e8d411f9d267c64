"""Resource limits (cgroup v2 when writable, else rlimits) and finding a run's processes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import signal
from collections.abc import Callable
from pathlib import Path

from cronhive.runner._models import Limits

CGROUP_ROOT = Path("/sys/fs/cgroup")
log = logging.getLogger("cronhive.runner")


class CgroupParent:
    """A cgroup v2 folder under which each limited run gets its own child group.

    Usable only when cgroup v2 is mounted, the node's own group is writable and the
    ``memory`` controller can be enabled for children; otherwise ``usable`` is False and
    limits fall back to rlimits. ``pids`` and ``cpu`` are enabled too where offered
    (``controllers``): then ``processes`` is also the run tree's ``pids.max`` and
    ``cpu_weight`` its ``cpu.weight``.
    """

    def __init__(self, root: Path | None = CGROUP_ROOT) -> None:
        self.path: Path | None = None
        self.controllers: frozenset[str] = frozenset()
        if root is not None:
            with contextlib.suppress(OSError, ValueError):
                self.path = self._prepare(root)

    @property
    def usable(self) -> bool:
        return self.path is not None

    def _prepare(self, root: Path) -> Path | None:
        if not (root / "cgroup.controllers").exists():
            return None  # cgroup v1 or none
        line = Path("/proc/self/cgroup").read_text().splitlines()
        own = next((x.split("::", 1)[1] for x in line if x.startswith("0::")), None)
        if own is None:
            return None
        base = root / own.lstrip("/") / "cronhive"
        base.mkdir(mode=0o700, exist_ok=True)
        offered = set((base / "cgroup.controllers").read_text().split())
        if "memory" not in offered:
            return None
        wanted = [c for c in ("memory", "pids", "cpu") if c in offered]
        (base / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in wanted))
        self.controllers = frozenset(wanted)
        return base

    def create(self, run_id: str, limits: Limits) -> Path:
        """Make the run's group and write its limits; OSError if the kernel refuses."""
        assert self.path is not None
        path = self.path / run_id
        path.mkdir(mode=0o700, exist_ok=True)
        if limits.memory_bytes is not None:
            (path / "memory.max").write_text(str(limits.memory_bytes))
            with contextlib.suppress(OSError):
                (path / "memory.swap.max").write_text("0")
        if limits.processes is not None and "pids" in self.controllers:
            (path / "pids.max").write_text(str(limits.processes))
        if limits.cpu_weight is not None and "cpu" in self.controllers:
            (path / "cpu.weight").write_text(str(limits.cpu_weight))
        return path

    def try_create(self, run_id: str, limits: Limits) -> Path | None:
        """`create`, or None (rlimits instead) if unusable or the kernel refused."""
        if self.path is None:
            return None
        try:
            return self.create(run_id, limits)
        except OSError as exc:
            log.warning("cgroup for run %s refused (%s); using rlimits", run_id, exc)
            return None

    @staticmethod
    def kill(path: Path) -> None:
        """SIGKILL every process in the group (cgroup.kill, else one by one)."""
        try:
            (path / "cgroup.kill").write_text("1")
            return
        except OSError:
            pass
        with contextlib.suppress(OSError):
            for pid in (path / "cgroup.procs").read_text().split():
                with contextlib.suppress(OSError):
                    os.kill(int(pid), signal.SIGKILL)

    @staticmethod
    def remove(path: Path) -> None:
        with contextlib.suppress(OSError):
            path.rmdir()


def rlimits(limits: Limits, *, memory: bool) -> list[tuple[int, int, int]]:
    """(resource, soft, hard) for ``limits``, never above the node's own hard limits.
    ``memory``: apply ``memory_bytes`` as RLIMIT_AS (no cgroup took it)."""
    table = [
        (resource.RLIMIT_CORE, limits.core_bytes),
        (resource.RLIMIT_FSIZE, limits.file_bytes),
        (resource.RLIMIT_NOFILE, limits.open_files),
        (resource.RLIMIT_NPROC, limits.processes),
        (resource.RLIMIT_AS, limits.memory_bytes if memory else None),
    ]
    out: list[tuple[int, int, int]] = []
    for which, value in table:
        if value is None:
            continue
        hard = resource.getrlimit(which)[1]
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        out.append((which, value, value))
    if limits.cpu_seconds is not None:  # SIGXCPU at the limit, SIGKILL a second later
        out.append((resource.RLIMIT_CPU, limits.cpu_seconds, limits.cpu_seconds + 1))
    return out


def preexec(limits: Limits | None, cgroup: Path | None) -> Callable[[], None] | None:
    """The function run in the child before exec, or None (keeps the fast vfork path)."""
    if limits is None:
        return None
    procs = str(cgroup / "cgroup.procs") if cgroup is not None else None
    table = rlimits(limits, memory=cgroup is None)

    def apply() -> None:
        if procs is not None:
            fd = os.open(procs, os.O_WRONLY)
            try:
                os.write(fd, b"0")
            finally:
                os.close(fd)
        for which, soft, hard in table:
            resource.setrlimit(which, (soft, hard))

    return apply


def tagged_pids(run_id: str, session: int | None) -> set[int]:
    """PIDs of processes that belong to a run though they left its process group.

    Two marks are recognised by scanning /proc: the run's session id (a child that
    called setpgid), and ``CRONHIVE_RUN_ID=<run_id>`` in the initial environment (a
    double-forked daemon that called setsid but kept its environment; readable for the
    node's own processes, and for all when the node is root). A daemon that left the
    session *and* cleared its environment is only caught with a cgroup.
    """
    mark = f"\x00CRONHIVE_RUN_ID={run_id}\x00".encode()
    me = os.getpid()
    found: set[int] = set()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        if pid == me:
            continue
        try:
            if session is not None and os.getsid(pid) == session:
                found.add(pid)
                continue
            with open(f"/proc/{pid}/environ", "rb") as f:
                if mark in b"\x00" + f.read():
                    found.add(pid)
        except OSError:
            continue
    return found


async def kill_marked(run_id: str) -> None:
    """SIGKILL what carries the mark of a run that has ended, and wait until it is gone.
    Not by session: the leader's PID, so its session id, may be another process's now."""
    found = tagged_pids(run_id, None)
    for pid in found:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    await wait_gone(found, within=1.0)


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] in (b"Z", b"X")
    except OSError:
        return True


async def wait_gone(pids: set[int], within: float) -> None:
    """Wait (polling /proc, only on the stop path) until ``pids`` are dead or zombies."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while pids and loop.time() < deadline:
        pids = {p for p in pids if not _gone(p)}
        if pids:
            await asyncio.sleep(0.01)
