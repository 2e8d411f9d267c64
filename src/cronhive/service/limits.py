"""The limits of what a run executes (its command and environment), wherever it comes
from: a job, an ad-hoc run (api.validate), a trigger's parameters (the gRPC API and the
web alike). Each check returns the value or raises `InvalidInput` naming the field."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import replace

from cronhive.errors import InvalidInput
from cronhive.model import RunSpec

__all__ = [
    "MAX_ARGS",
    "MAX_ARG_BYTES",
    "MAX_COMMAND_BYTES",
    "MAX_ENV",
    "MAX_ENV_NAME",
    "MAX_ENV_VALUE_BYTES",
    "bad",
    "command",
    "env",
    "parameters",
    "utf8_len",
]

KIB = 1024
MAX_ARGS = 256
MAX_ARG_BYTES = 4 * KIB
MAX_COMMAND_BYTES = 64 * KIB
MAX_ENV = 128
MAX_ENV_NAME = 128
MAX_ENV_VALUE_BYTES = 4 * KIB
_ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")


def bad(field: str, message: str) -> InvalidInput:
    return InvalidInput(f"{field}: {message}", field=field)


def utf8_len(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def command(args: Iterable[str], *, script: bool = False) -> tuple[str, ...]:
    argv = tuple(args)
    if script and not argv:
        return argv  # a script's arguments may be none
    if not argv:
        raise bad("command", "must have at least one argument")
    if len(argv) > MAX_ARGS:
        raise bad("command", f"at most {MAX_ARGS} arguments, got {len(argv)}")
    total = 0
    for i, arg in enumerate(argv):
        size = utf8_len(arg)
        if size > MAX_ARG_BYTES:
            raise bad("command", f"argument {i} is longer than {MAX_ARG_BYTES} bytes")
        if "\x00" in arg:
            raise bad("command", f"argument {i} contains NUL")
        total += size
    if total > MAX_COMMAND_BYTES:
        raise bad("command", f"longer than {MAX_COMMAND_BYTES} bytes in all")
    if not argv[0] and not script:
        raise bad("command", "the first argument must not be empty")
    return argv


def env(variables: Mapping[str, str]) -> dict[str, str]:
    if len(variables) > MAX_ENV:
        raise bad("env", f"at most {MAX_ENV} variables, got {len(variables)}")
    for key, value in variables.items():
        if not _ENV_NAME_RE.fullmatch(key):
            raise bad("env", f"bad variable name {key[:40]!r}")
        if "\x00" in value or utf8_len(value) > MAX_ENV_VALUE_BYTES:
            raise bad(
                "env", f"value of {key} is longer than {MAX_ENV_VALUE_BYTES} bytes or has NUL"
            )
    return dict(sorted(variables.items()))


def parameters(run: RunSpec, variables: Mapping[str, str], args: Iterable[str]) -> RunSpec:
    """`run` with one trigger's parameters: `variables` over the job's environment,
    `args` after its command (a shell job's script gets them as $1, $2, ...). The result
    is held to every limit of a job's own command and env."""
    extra = tuple(args)
    if not variables and not extra:
        return run
    if run.sql is not None:
        raise bad("args" if extra else "env", "a SQL job takes no env or arguments")
    return replace(run, env=env({**run.env, **variables}), command=command((*run.command, *extra)))
