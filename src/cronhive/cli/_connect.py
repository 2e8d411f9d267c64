"""Which node and which certificate a client verb uses, and the one way verbs call it.

Resolution, first hit wins, per setting:
  server:    --server, $CRONHIVE_SERVER, client.toml `server`, 127.0.0.1:7433
  certs:     --certs,  $CRONHIVE_CERTS,  client.toml `certs`,  ./.cronhive/certs
  cert name: --as,                       client.toml `cert`,   admin
client.toml is $CRONHIVE_CONFIG, else ~/.config/cronhive/client.toml (absent = ignored).

`call(ctx, body)` is the sync edge: it runs ``body(client)`` under ``asyncio.run`` and
turns every failure into one line on stderr and the documented exit code.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import ssl
import sys
import tomllib
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
from grpclib.const import Status
from grpclib.exceptions import GRPCError, StreamTerminatedError

from cronhive.api.client import Client, connect
from cronhive.cli._app import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_NOT_FOUND,
    EXIT_USAGE,
    exit_code_for,
    fail,
)
from cronhive.config.server import DEFAULT_LISTEN
from cronhive.errors import CronhiveError, InvalidInput

__all__ = [
    "Flags",
    "Target",
    "Unusable",
    "call",
    "call_target",
    "caller_name",
    "open_client",
    "resolve",
]

T = TypeVar("T")
DEFAULT_CERTS = Path(".cronhive") / "certs"
DEFAULT_CERT_NAME = "admin"
_CONFIG_KEYS = {"server", "certs", "cert"}


@dataclass(frozen=True, kw_only=True)
class Flags:
    """The group's connection flags as given (None = not given)."""

    server: str | None = None
    certs: Path | None = None
    cert_name: str | None = None


@dataclass(frozen=True, kw_only=True)
class Target:
    """Where to connect and with which certificate, after resolution."""

    server: str
    certs: Path
    cert_name: str

    def describe(self) -> str:
        return f"server {self.server} with certificate {self.certs / self.cert_name}.crt"


def _config_path(env: dict[str, str]) -> Path:
    if env.get("CRONHIVE_CONFIG"):
        return Path(env["CRONHIVE_CONFIG"])
    return Path(env.get("HOME", "~")).expanduser() / ".config" / "cronhive" / "client.toml"


def _read_config(path: Path, explicit: bool) -> dict[str, Any]:
    try:
        values = tomllib.loads(path.read_text())
    except FileNotFoundError:
        if explicit:
            raise InvalidInput(f"client config {path}: no such file", field="config") from None
        return {}
    except OSError as exc:
        raise InvalidInput(f"client config {path}: {exc.strerror}", field="config") from exc
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(f"client config {path}: {exc}", field="config") from exc
    unknown = sorted(set(values) - _CONFIG_KEYS)
    if unknown:
        raise InvalidInput(
            f"client config {path}: unknown key {unknown[0]!r} (known: cert, certs, server)",
            field=unknown[0],
        )
    for key, value in values.items():
        if not isinstance(value, str) or not value:
            raise InvalidInput(f"client config {path}: {key} must be a non-empty string")
    return values


def resolve(flags: Flags, env: dict[str, str] | None = None) -> Target:
    """The connection target from flags, environment, config file and defaults.

    Raises InvalidInput for an unreadable or malformed config file.
    """
    env = dict(os.environ) if env is None else env
    path = _config_path(env)
    config = _read_config(path, explicit=bool(env.get("CRONHIVE_CONFIG")))
    base = path.parent  # a relative `certs` in the file is relative to the file
    certs = (
        flags.certs
        or (Path(env["CRONHIVE_CERTS"]) if env.get("CRONHIVE_CERTS") else None)
        or (base / Path(config["certs"]).expanduser() if "certs" in config else None)
        or DEFAULT_CERTS
    )
    return Target(
        server=flags.server or env.get("CRONHIVE_SERVER") or config.get("server", DEFAULT_LISTEN),
        certs=certs,
        cert_name=flags.cert_name or config.get("cert", DEFAULT_CERT_NAME),
    )


def caller_name(target: Target) -> str:
    """The user the client certificate names (its subject CN); InvalidInput if unreadable."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    path = target.certs / f"{target.cert_name}.crt"
    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"cannot read client certificate {path}: {exc}") from exc
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not names:
        raise InvalidInput(f"client certificate {path} has no CN")
    return str(names[0].value)


class Unusable(Exception):
    """The address or certificate files could not be used (before any connection)."""

    def __init__(self, cause: InvalidInput) -> None:
        super().__init__(str(cause))
        self.cause = cause


def _grpc_exit(exc: GRPCError) -> int:
    # PERMISSION_DENIED: the request named something the caller may not use (a SQL role,
    # a run_as, a group): refused as given, like bad input.
    if exc.status in (Status.INVALID_ARGUMENT, Status.PERMISSION_DENIED):
        return EXIT_USAGE
    if exc.status is Status.NOT_FOUND:
        return EXIT_NOT_FOUND
    return EXIT_FAILURE


async def open_client(target: Target) -> Client:
    """A client for `target`; raises Unusable when the address or certificate files
    cannot be used (nothing is dialled until the first call)."""
    try:
        return await connect(target.server, target.certs, cert_name=target.cert_name)
    except InvalidInput as exc:
        raise Unusable(exc) from exc


def call(ctx: click.Context, body: Callable[[Client, Target], Awaitable[T]]) -> T:
    """Connects as the group's flags say and runs `body`; never returns on failure.

    A refused call exits with the status's code (INVALID_ARGUMENT 2, NOT_FOUND 3, else
    1) and its message; an unreachable server or bad certificate exits 1 naming both;
    Ctrl-C exits 130 without a traceback.
    """

    async def connected(target: Target) -> T:
        async with await open_client(target) as client:
            return await body(client, target)

    return call_target(ctx, connected)


def _interrupted(*_: object) -> NoReturn:
    """Ctrl-C: out at once with 130. Nothing is left to tidy (a follower detaches, the
    run goes on), and tidying a stream the server is slow to close could hang the exit."""
    with contextlib.suppress(Exception):
        sys.stdout.flush()
        sys.stderr.write("\n")
        sys.stderr.flush()
    os._exit(EXIT_INTERRUPTED)


def call_target(ctx: click.Context, body: Callable[[Target], Coroutine[Any, Any, T]]) -> T:
    """Like `call`, for a body that opens its own client(s) with `open_client`."""
    flags = ctx.find_root().obj
    if not isinstance(flags, Flags):
        flags = Flags()
    try:
        target = resolve(flags)
    except InvalidInput as exc:
        fail(str(exc), EXIT_USAGE)
    previous = signal.signal(signal.SIGINT, _interrupted)
    try:
        return asyncio.run(body(target))
    except KeyboardInterrupt:
        _interrupted()
    except GRPCError as exc:
        if exc.status is Status.UNAVAILABLE and not exc.message:
            fail(f"cannot reach {target.describe()}: unavailable")
        fail(exc.message or exc.status.name, _grpc_exit(exc))
    except Unusable as exc:
        if exc.cause.field == "server":
            fail(f"--server: {exc.cause}", EXIT_USAGE)
        fail(f"cannot use {target.describe()}: {exc.cause}", EXIT_FAILURE)
    except CronhiveError as exc:
        fail(str(exc), exit_code_for(exc))
    except (ssl.SSLError, StreamTerminatedError, ConnectionError, OSError) as exc:
        reason = str(exc) or type(exc).__name__
        fail(f"cannot reach {target.describe()}: {reason}")
    finally:
        signal.signal(signal.SIGINT, previous)
