"""Notification targets, as the node configuration names them (`[notify.NAME]`).

A job names targets; only the node configuration knows what they are, so secrets (a
webhook's signing key, the SMTP password) never enter a job, an API answer or an event.
Every node of a cluster should carry the same targets: any node may deliver.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cronhive.errors import InvalidInput

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
_ADDRESS = re.compile(r"[^@\s]+@[^@\s]+")
_JOB = re.compile(r"((?:user|group):[A-Za-z0-9][A-Za-z0-9_.@-]*)/([A-Za-z0-9][A-Za-z0-9_.-]*)")


@dataclass(frozen=True, kw_only=True)
class Smtp:
    """The `[smtp]` table: how this node sends mail."""

    host: str
    port: int = 25
    starttls: bool = False
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    sender: str = "cronhive@localhost"  # `from` in the TOML
    timeout: float = 30.0


@dataclass(frozen=True, kw_only=True)
class Webhook:
    name: str
    url: str
    secret: bytes = field(repr=False)
    timeout: float = 10.0


@dataclass(frozen=True, kw_only=True)
class Mail:
    name: str
    to: str
    smtp: Smtp


@dataclass(frozen=True, kw_only=True)
class Chain:
    """Triggers `owner`'s job `job` (a chained job)."""

    name: str
    owner: str
    job: str


Target = Webhook | Mail | Chain


@dataclass(frozen=True)
class Targets:
    """The targets of this node by name; `Targets()` has none."""

    by_name: Mapping[str, Target] = field(default_factory=dict)

    def __contains__(self, name: object) -> bool:
        return name in self.by_name

    def get(self, name: str) -> Target | None:
        return self.by_name.get(name)

    def names(self) -> list[str]:
        return sorted(self.by_name)


def _bad(key: str, why: str) -> InvalidInput:
    return InvalidInput(f"{key}: {why}", field=key)


def _secret_file(key: str, value: Any) -> str:
    try:
        return Path(str(value)).read_text().strip()
    except OSError as exc:
        raise _bad(key, f"cannot read {value}: {exc.strerror}") from None


def parse_smtp(table: Any) -> Smtp:
    if not isinstance(table, dict):
        raise _bad("smtp", "expected a table")
    known = {"host", "port", "starttls", "user", "password_file", "from", "timeout"}
    unknown = sorted(set(table) - known)
    if unknown:
        raise _bad(f"smtp.{unknown[0]}", "unknown key")
    host = table.get("host")
    if not isinstance(host, str) or not host:
        raise _bad("smtp.host", "expected a host name")
    port = table.get("port", 25)
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        raise _bad("smtp.port", "expected a port 1-65535")
    sender = table.get("from", "cronhive@localhost")
    if not isinstance(sender, str) or not _ADDRESS.fullmatch(sender):
        raise _bad("smtp.from", f"not a mail address: {sender!r}")
    password = None
    if "password_file" in table:
        password = _secret_file("smtp.password_file", table["password_file"])
    return Smtp(
        host=host,
        port=port,
        starttls=bool(table.get("starttls", False)),
        user=table.get("user"),
        password=password,
        sender=sender,
        timeout=float(table.get("timeout", 30.0)),
    )


def parse_targets(table: Any, smtp: Smtp | None) -> Targets:
    """The `[notify.NAME]` tables. Raises InvalidInput naming the bad key."""
    if not isinstance(table, dict):
        raise _bad("notify", "expected tables [notify.NAME]")
    found: dict[str, Target] = {}
    for name, spec in table.items():
        key = f"notify.{name}"
        if not _NAME.fullmatch(name):
            raise _bad(key, "a target name is letters, digits and _.- (at most 63)")
        if not isinstance(spec, dict):
            raise _bad(key, "expected a table")
        kinds = [k for k in ("webhook", "mail", "job") if k in spec]
        if len(kinds) != 1:
            raise _bad(
                key, "expected exactly one of webhook = URL, mail = ADDRESS, job = OWNER/NAME"
            )
        extra = sorted(set(spec) - {kinds[0], "secret", "secret_file", "timeout"})
        if extra:
            raise _bad(f"{key}.{extra[0]}", "unknown key")
        found[name] = _target(key, name, kinds[0], spec, smtp)
    return Targets(found)


def _target(key: str, name: str, kind: str, spec: dict[str, Any], smtp: Smtp | None) -> Target:
    value = spec[kind]
    if kind == "webhook":
        if not isinstance(value, str) or not re.match(r"https?://[^\s/]+", value):
            raise _bad(f"{key}.webhook", f"expected an http(s) URL, got {value!r}")
        if "secret_file" in spec:
            secret = _secret_file(f"{key}.secret_file", spec["secret_file"])
        elif isinstance(spec.get("secret"), str):
            secret = spec["secret"]
        else:
            raise _bad(key, "a webhook needs secret or secret_file (its deliveries are signed)")
        if len(secret) < 16:
            raise _bad(key, "the webhook secret must be at least 16 characters")
        timeout = spec.get("timeout", 10.0)
        if not isinstance(timeout, int | float) or not 0 < timeout <= 300:
            raise _bad(f"{key}.timeout", "expected seconds in (0, 300]")
        return Webhook(name=name, url=value, secret=secret.encode(), timeout=float(timeout))
    if kind == "mail":
        if not isinstance(value, str) or not _ADDRESS.fullmatch(value):
            raise _bad(f"{key}.mail", f"not a mail address: {value!r}")
        if smtp is None:
            raise _bad(key, "a mail target needs an [smtp] table")
        return Mail(name=name, to=value, smtp=smtp)
    m = _JOB.fullmatch(value) if isinstance(value, str) else None
    if m is None:
        raise _bad(f"{key}.job", f"expected OWNER/NAME such as user:alice/reindex, got {value!r}")
    return Chain(name=name, owner=m.group(1), job=m.group(2))
