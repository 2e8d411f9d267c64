"""A run's own resource limits from flags (`add`, `edit`, `run`) or an apply file's
`limits = { memory = "512M", processes = 64 }`, written onto a `pb.RunLimits`.

The flags and the table keys: --memory (memory), --max-procs (processes), --max-files
(open_files), --cpu-time (cpu_time), --cpu-weight (cpu_weight); `none` gives a limit
back to the node's. The ranges are the server's (api.validate.LIMIT_RANGES).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import click

from cronhive.api._generated.cronhive.v1 import cronhive_pb2 as pb
from cronhive.config._limits import parse_limits
from cronhive.errors import InvalidInput
from cronhive.model import RunLimits

__all__ = ["limit_flags", "limit_options", "limits_dict", "limits_text", "set_limits"]

F = TypeVar("F", bound=Callable[..., Any])
# flag parameter -> key of the limits table
FLAGS = {
    "memory": "memory",
    "max_procs": "processes",
    "max_files": "open_files",
    "cpu_time": "cpu_time",
    "cpu_weight": "cpu_weight",
}


def limit_options(func: F) -> F:
    """The five limit flags (None = not given)."""
    options = [
        click.option(
            "--memory", metavar="SIZE", help="Memory limit of a run (64M, 2G; none: the node's)."
        ),
        click.option("--max-procs", metavar="N", help="Processes a run may have."),
        click.option("--max-files", metavar="N", help="Open files per process."),
        click.option("--cpu-time", metavar="DURATION", help="CPU time per process (10m)."),
        click.option(
            "--cpu-weight",
            metavar="N",
            help="CPU share against other runs, cgroup v2 nodes only [100; at most the node's].",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def limit_flags(flags: dict[str, Any]) -> dict[str, Any] | None:
    """Takes the limit flags out of `flags`: the table they make, None if none was given.
    A bad value is a usage error naming its flag."""
    table = {FLAGS[k]: v for k in FLAGS if (v := flags.pop(k, None)) is not None}
    for flag, key in FLAGS.items():
        if key in table:
            try:
                parse_limits({key: table[key]}, "", clearing=True)
            except InvalidInput as exc:
                message = str(exc).split(": ", 1)[-1]
                raise click.UsageError(f"--{flag.replace('_', '-')}: {message}") from None
    return table or None


def set_limits(out: pb.RunLimits, table: Mapping[str, Any]) -> None:
    """Writes `table` onto `out` (a field given `none` is cleared); InvalidInput names
    the key."""
    for field, value in parse_limits(table, "limits", clearing=True).items():
        if value is None:
            out.ClearField(field)  # type: ignore[arg-type]
        else:
            setattr(out, field, value)


def limits_dict(msg: pb.Job | pb.Execution) -> dict[str, int] | None:
    """The limits a job or run asked for, by field (`memory_bytes`, ...); None: none."""
    if not msg.HasField("limits"):
        return None
    return {f.name: int(v) for f, v in msg.limits.ListFields()} or None


def limits_text(msg: pb.Job | pb.Execution) -> str | None:
    """`memory 64M, processes 5` for show and status; None: none asked."""
    values = limits_dict(msg)
    return RunLimits(**values).describe() if values else None
