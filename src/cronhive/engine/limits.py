"""A run's own limits held to the node's, and the record of what was applied.

The node's limits (`runner.DEFAULT_LIMITS` under its `[limits]` table) apply to every
run and are also ceilings: a job may lower a limit, never raise it. A job asking above
the node's limit is clamped to it, not refused: nodes differ, and only the node that runs
the job knows its own ceilings; the run's record says so. CPU weight, whose default is
the kernel's 100, may only be lowered below 100 (or the node's weight): a job may be
nicer than the others, never greedier.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from cronhive import runner
from cronhive.model import LIMIT_NAMES, LIMIT_WORDS, RunLimits, limit_text

__all__ = ["Applied", "describe", "effective", "runs_as_root"]

DEFAULT_CPU_WEIGHT = 100  # the kernel's cpu.weight of a group nobody set


@dataclass(frozen=True, kw_only=True)
class Applied:
    """The limits a run starts with: `limits` for the runner (None: the node's own, as
    is), and the asked values that were clamped to the node's (field -> asked)."""

    limits: runner.Limits | None
    clamped: Mapping[str, int]


def effective(node: runner.Limits | None, own: RunLimits | None) -> Applied:
    """`own` held to `node` (see the module docstring)."""
    if own is None:
        return Applied(limits=None, clamped={})
    base = node or runner.Limits()
    values: dict[str, int] = {}
    clamped: dict[str, int] = {}
    for name, asked in own.values().items():
        ceiling = getattr(base, name)
        if name == "cpu_weight" and ceiling is None:
            ceiling = DEFAULT_CPU_WEIGHT
        if ceiling is not None and asked > ceiling:
            clamped[name] = asked
            asked = ceiling
        values[name] = asked
    return Applied(limits=base.merged(runner.Limits(**values)), clamped=clamped)


# How each field is enforced: (with a cgroup v2 group, without one).
_HOW = {
    "memory_bytes": ("memory.max, the whole run", "RLIMIT_AS, per process"),
    "processes": ("pids.max, the whole run", "RLIMIT_NPROC, per uid on the host"),
    "open_files": ("RLIMIT_NOFILE, per process",) * 2,
    "cpu_seconds": ("RLIMIT_CPU, per process",) * 2,
    "cpu_weight": ("cpu.weight", ""),
}


def describe(
    applied: Applied,
    how: str | None,
    *,
    controllers: frozenset[str] = frozenset(),
    as_root: bool = False,
) -> str | None:
    """The run's record of its limits: `how` ("cgroup"/"rlimit", the runner's
    `limits_applied`), each limit and what enforces it, what is not enforced here and
    why, and what was clamped. None when the run asked for none."""
    limits = applied.limits
    if limits is None or how is None:
        return None
    cgroup = how == "cgroup"
    done: list[str] = []
    skipped: list[str] = []
    for name in LIMIT_NAMES:
        value = getattr(limits, name)
        if value is None:
            continue
        text = f"{LIMIT_WORDS[name]} {limit_text(name, value)}"
        way = _HOW[name][0 if cgroup else 1]
        if name == "processes" and cgroup and "pids" not in controllers:
            way = _HOW[name][1]
        if name == "cpu_weight" and not (cgroup and "cpu" in controllers):
            skipped.append(f"{text} (needs a cgroup v2 cpu controller)")
        elif name == "processes" and as_root and way == _HOW[name][1]:
            skipped.append(f"{text} (RLIMIT_NPROC does not bind root)")
        else:
            done.append(f"{text} ({way})")
    out = f"{how}: {', '.join(done) or 'none'}"
    if skipped:
        out += f"; not enforced here: {', '.join(skipped)}"
    for name, asked in applied.clamped.items():
        value = getattr(limits, name)
        out += (
            f"; {LIMIT_WORDS[name]} {limit_text(name, asked)} asked, "
            f"held to the node's {limit_text(name, value)}"
        )
    return out


def runs_as_root(user: str | None, run_user: str | None) -> bool:
    """Whether a run's processes are root's: a root node running it as itself (no
    sandbox user) or as `root` by name."""
    if os.geteuid() != 0:
        return False
    who = user or run_user
    return who is None or who == "root"
