"""Checking a RunSpec and turning it into what the OS needs (argv, clean env, identity)."""

from __future__ import annotations

import grp
import os
import pwd
import re
from dataclasses import dataclass

from cronhive.errors import InvalidInput
from cronhive.runner._models import LIMIT_FIELDS, RunSpec

BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_RUN_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}")
_ENV_NAME = re.compile(r"[^=\x00]+")


class IdentityError(Exception):
    """The run cannot take the asked user/group here; the run ends FAILED with this text."""


@dataclass(frozen=True, kw_only=True)
class Identity:
    """Whom the child runs as: ``None`` fields mean "as the node"."""

    uid: int | None
    gid: int | None
    extra_groups: list[int] | None
    user: str
    home: str

    def switch(self) -> tuple[int, int, list[int]] | None:
        """(uid, gid, groups) to switch to, or None to stay the node's user."""
        if self.uid is None and self.gid is None:
            return None
        uid = self.uid if self.uid is not None else os.getuid()
        return uid, self.gid if self.gid is not None else os.getgid(), self.extra_groups or []


def validate(spec: RunSpec) -> None:
    """Raise InvalidInput naming the field if ``spec`` is malformed (nothing is started)."""
    if not isinstance(spec.run_id, str) or not _RUN_ID.fullmatch(spec.run_id):
        raise InvalidInput(
            "run_id must be 1-128 of [A-Za-z0-9._-], not starting with '.'", field="run_id"
        )
    if isinstance(spec.argv, str | bytes) or not spec.argv:
        raise InvalidInput("argv must be a non-empty sequence of strings", field="argv")
    for arg in spec.argv:
        if not isinstance(arg, str) or "\x00" in arg:
            raise InvalidInput("argv items must be strings without NUL", field="argv")
    if not spec.argv[0]:
        raise InvalidInput("argv[0] must not be empty", field="argv")
    for key, value in spec.env.items():
        if not isinstance(key, str) or not _ENV_NAME.fullmatch(key):
            raise InvalidInput(f"bad environment name {key!r}", field="env")
        if not isinstance(value, str) or "\x00" in value:
            raise InvalidInput(f"bad environment value for {key}", field="env")
    if spec.cwd is not None and (not spec.cwd or "\x00" in spec.cwd):
        raise InvalidInput("cwd must be a non-empty path", field="cwd")
    for name in ("timeout", "grace"):
        value = getattr(spec, name)
        if value is not None and not value >= 0:
            raise InvalidInput(f"{name} must be >= 0", field=name)
    cap = spec.output_cap
    if cap is not None and (not isinstance(cap, int) or isinstance(cap, bool) or cap < 0):
        raise InvalidInput("output_cap must be an int >= 0", field="output_cap")
    if spec.limits is not None:
        for name in LIMIT_FIELDS:
            value = getattr(spec.limits, name)
            low, high = (
                (0 if name == "core_bytes" else 1),
                (10000 if name == "cpu_weight" else None),
            )
            bad = not isinstance(value, int) or value < low or (high is not None and value > high)
            if value is not None and bad:
                span = f"{low}-{high}" if high else f">= {low}"
                raise InvalidInput(f"limits.{name} must be an int {span}", field="limits")


def command(spec: RunSpec) -> list[str]:
    """The argv to execute: as given, or ``/bin/sh -c script sh args...`` for shell runs."""
    if spec.shell:
        return ["/bin/sh", "-c", spec.argv[0], "sh", *spec.argv[1:]]
    return list(spec.argv)


def identity(spec: RunSpec, *, default_user: str | None = None) -> Identity:
    """Resolve user/group. Raise IdentityError if unknown or if the node is not root.

    ``default_user``: on a root node, whom a run that names no user runs as (never root
    by default when runs are isolated); ignored on a node that is not root.
    """
    user = spec.user
    by_default = user is None and default_user is not None and os.geteuid() == 0
    if by_default:
        user = default_user  # looked up once, below: this runs for every sandboxed run
    if user is None and spec.group is None:
        me = _node_user()
        return Identity(uid=None, gid=None, extra_groups=None, user=me[0], home=me[1])
    if os.geteuid() != 0:
        raise IdentityError("running as another user or group needs a node running as root")
    uid = gid = None
    extra: list[int] | None = None
    name, home = _node_user()
    if user is not None:
        try:
            pw = pwd.getpwnam(user)
        except KeyError:
            said = " (the node's run_user)" if by_default else ""
            raise IdentityError(f"unknown user {user!r}{said}") from None
        uid, gid, name, home = pw.pw_uid, pw.pw_gid, pw.pw_name, pw.pw_dir
        extra = os.getgrouplist(pw.pw_name, pw.pw_gid)
    if spec.group is not None:
        try:
            gid = grp.getgrnam(spec.group).gr_gid
        except KeyError:
            raise IdentityError(f"unknown group {spec.group!r}") from None
        if extra is None:
            extra = []
    return Identity(uid=uid, gid=gid, extra_groups=extra, user=name, home=home)


def environment(spec: RunSpec, who: Identity) -> dict[str, str]:
    """Minimal base + spec.env + CRONHIVE_RUN_ID/CRONHIVE_JOB; nothing from the node."""
    env = {
        "PATH": BASE_PATH,
        "HOME": who.home,
        "LANG": "C.UTF-8",
        "USER": who.user,
        "LOGNAME": who.user,
    }
    env.update(spec.env)
    env["CRONHIVE_RUN_ID"] = spec.run_id
    env["CRONHIVE_JOB"] = spec.job_name or ""
    return env


_NODE_USER: tuple[str, str] | None = None


def _node_user() -> tuple[str, str]:
    global _NODE_USER
    if _NODE_USER is None:
        try:
            pw = pwd.getpwuid(os.geteuid())
            _NODE_USER = (pw.pw_name, pw.pw_dir)
        except KeyError:
            _NODE_USER = (str(os.geteuid()), "/")
    return _NODE_USER
