"""The policy file: roles for users and groups, extra group memberships, run_as grants.

TOML, read with tomllib::

    [defaults]
    roles = ["scheduler"]      # roles every authenticated user has

    [users.alice]
    roles = ["scheduler"]
    groups = ["data"]          # alice is a member of "data" as if her certificate said so
    run_as = ["etl"]           # jobs owned by user:alice may run as the OS user etl

    [groups.ops]
    roles = ["scheduler", "admin"]
    run_as = ["backup"]        # jobs owned by group:ops may run as backup

    [groups.data.sql]          # SQL jobs owned by group:data (or by its members)
    warehouse = ["etl"]        # may run as PostgreSQL role etl on database warehouse
    [limits]                   # per-owner limits of everyone (these are the defaults)
    concurrent_runs = 256      # a whole number, or "unlimited"
    queued_runs = 500
    jobs = 500
    shortest_interval = "1m"   # a duration, or "unlimited"
    admins_exempt = true       # owners with the admin role have no limits

    [users.bob.limits]         # bob's own (what it names replaces the above)
    concurrent_runs = 4

Without a policy file the default applies (`DEFAULT_POLICY`, see docs/security.md): user
``admin`` and group ``admins`` are admins, every authenticated user is a scheduler, and
nobody has run_as grants. With a file, only what it says applies: a missing
``[defaults]`` means no roles for everybody.

``run_as = ["*"]`` grants every OS user except root; root (or uid 0) only when listed.

Limits apply per owner: a group-owned job counts for the group, not for its creator.
Without ``[limits]`` (and without a file) the defaults apply; an owner's own ``limits``
table wins over the admin exemption, so an admin may also be given limits.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cronhive.auth._limits import DEFAULT_LIMITS, UNLIMITED, Limits, parse_limits
from cronhive.auth._paths import validate_name
from cronhive.auth.identity import Identity, Role
from cronhive.errors import InvalidInput

__all__ = [
    "DEFAULT_POLICY",
    "DEFAULT_POLICY_TOML",
    "ROOT_NAMES",
    "UNLIMITED",
    "Grant",
    "Limits",
    "Policy",
    "load_policy",
    "parse_policy",
    "validate_run_as",
]

ANY_USER = "*"
ROOT_NAMES = frozenset({"root", "0"})
# POSIX-ish login names, or a numeric uid.
_RUN_AS_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}|[0-9]{1,10}")


def validate_run_as(name: str, *, field: str = "run_as") -> str:
    """Returns `name` if it is a plausible OS user name or uid, else raises InvalidInput."""
    if not _RUN_AS_RE.fullmatch(name):
        raise InvalidInput(f"{field}: {name!r} is not a valid OS user name or uid", field=field)
    return name


@dataclass(frozen=True, kw_only=True)
class Grant:
    """What the policy gives one user or group."""

    roles: frozenset[Role] = field(default_factory=frozenset)
    groups: frozenset[str] = field(default_factory=frozenset)  # users only
    run_as: frozenset[str] = field(default_factory=frozenset)
    sql: Mapping[str, frozenset[str]] = field(default_factory=dict)  # database -> roles
    limits: Mapping[str, Any] = field(default_factory=dict)  # of `Limits`, those named


@dataclass(frozen=True, kw_only=True)
class Policy:
    """A parsed policy. `identity` builds callers; `run_as_allowed` answers grants."""

    default_roles: frozenset[Role] = field(default_factory=frozenset)
    users: Mapping[str, Grant] = field(default_factory=dict)
    groups: Mapping[str, Grant] = field(default_factory=dict)
    limits: Limits = DEFAULT_LIMITS
    admins_exempt: bool = True

    def limits_for(self, owner: str, caller: Identity | None = None) -> Limits:
        """The limits of things owned by `owner` (``user:<n>``/``group:<n>``): the
        owner's own ``limits`` over the defaults, or over none at all when the owner is
        an admin and admins are exempt. A user is an admin by the policy, or also by
        `caller`'s certificate groups when `caller` is that user (at claim time nobody
        calls: there only the policy counts)."""
        kind, _, name = owner.partition(":")
        if kind == "group":
            grant = self.groups.get(name, Grant())
            admin = Role.ADMIN in grant.roles
        else:
            grant = self.users.get(name, Grant())
            who = caller if caller is not None and caller.user == name else self.identity(name)
            admin = who.is_admin
        base = UNLIMITED if admin and self.admins_exempt else self.limits
        return base.merged(grant.limits)

    def identity(self, user: str, cert_groups: frozenset[str] = frozenset()) -> Identity:
        """The Identity of `user` whose certificate names `cert_groups`: groups are the
        certificate's plus the policy's; roles are the defaults plus the user's plus those
        of every group the user is in (groups do not nest)."""
        own = self.users.get(user, Grant())
        groups = cert_groups | own.groups
        roles = set(self.default_roles | own.roles)
        for g in groups:
            roles |= self.groups.get(g, Grant()).roles
        return Identity(user=user, groups=groups, roles=frozenset(roles))

    def run_as_allowed(self, owner: str, run_as: str) -> bool:
        """True if things owned by `owner` (``user:<n>``/``group:<n>``) may run as `run_as`.

        ``*`` covers every OS user except root; root must be listed by name (or uid 0).
        """
        kind, _, name = owner.partition(":")
        table = self.users if kind == "user" else self.groups if kind == "group" else {}
        granted = table.get(name, Grant()).run_as
        if run_as in granted:
            return True
        return ANY_USER in granted and run_as not in ROOT_NAMES

    def sql_role_allowed(self, owner: str, database: str, role: str) -> bool:
        """True if SQL jobs owned by `owner` may run as PostgreSQL `role` on `database`:
        granted to the user, to a group the policy puts the user in, or to the owning
        group. Certificate groups do not count: a run starts with no certificate, and the
        rule must answer the same when the job is saved and when it runs."""
        kind, _, name = owner.partition(":")
        if kind == "user":
            own = self.users.get(name, Grant())
            grants = [own, *(self.groups.get(g, Grant()) for g in sorted(own.groups))]
        elif kind == "group":
            grants = [self.groups.get(name, Grant())]
        else:
            return False
        return any(role in g.sql.get(database, frozenset()) for g in grants)


def _str_list(value: Any, key: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidInput(f"{key}: must be a list of strings", field=key)
    return value


def _roles(value: Any, key: str) -> frozenset[Role]:
    roles = set()
    for v in _str_list(value, key):
        try:
            roles.add(Role(v))
        except ValueError:
            known = ", ".join(r.value for r in Role)
            raise InvalidInput(f"{key}: unknown role {v!r} (known: {known})", field=key) from None
    return frozenset(roles)


def _grant(table: Any, key: str, allowed: frozenset[str]) -> Grant:
    if not isinstance(table, dict):
        raise InvalidInput(f"{key}: must be a table", field=key)
    for k in table:
        if k not in allowed:
            raise InvalidInput(f"{key}.{k}: unknown key (allowed: {sorted(allowed)})", field=k)
    groups = frozenset(
        validate_name(g, field=f"{key}.groups") for g in _str_list(table.get("groups", []), key)
    )
    run_as_key = f"{key}.run_as"
    run_as = frozenset(
        r if r == ANY_USER else validate_run_as(r, field=run_as_key)
        for r in _str_list(table.get("run_as", []), run_as_key)
    )
    limits = parse_limits(table.get("limits", {}), f"{key}.limits")
    return Grant(
        roles=_roles(table.get("roles", []), f"{key}.roles"),
        groups=groups,
        run_as=run_as,
        sql=_sql_grants(table.get("sql", {}), f"{key}.sql"),
        limits=limits,
    )


def _sql_grants(table: Any, key: str) -> dict[str, frozenset[str]]:
    """`{database = ["role", ...]}`: names as PostgreSQL spells them (case matters)."""
    if not isinstance(table, dict):
        raise InvalidInput(f"{key}: must be a table of database = [roles]", field=key)
    return {db: frozenset(_str_list(roles, f"{key}.{db}")) for db, roles in table.items()}


def _section(doc: dict[str, Any], name: str, allowed: frozenset[str]) -> dict[str, Grant]:
    table = doc.get(name, {})
    if not isinstance(table, dict):
        raise InvalidInput(f"{name}: must be a table", field=name)
    return {
        validate_name(k, field=f"{name}.{k}"): _grant(v, f"{name}.{k}", allowed)
        for k, v in table.items()
    }


def parse_policy(text: str, *, source: str = "policy") -> Policy:
    """Parses policy TOML. Raises InvalidInput naming `source` and the bad key."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(f"{source}: not valid TOML ({exc})", field=source) from None
    try:
        for k in doc:
            if k not in ("defaults", "users", "groups", "limits"):
                raise InvalidInput(
                    f"{k}: unknown key (allowed: defaults, users, groups, limits)", field=k
                )
        defaults = doc.get("defaults", {})
        if not isinstance(defaults, dict) or set(defaults) - {"roles"}:
            raise InvalidInput("defaults: may only hold roles", field="defaults")
        table = doc.get("limits", {})
        limits = parse_limits(table, "limits", extra=frozenset({"admins_exempt"}))
        exempt = table.get("admins_exempt", True)
        if not isinstance(exempt, bool):
            raise InvalidInput("limits.admins_exempt: must be true or false", field="limits")
        return Policy(
            default_roles=_roles(defaults.get("roles", []), "defaults.roles"),
            users=_section(doc, "users", frozenset({"roles", "groups", "run_as", "sql", "limits"})),
            groups=_section(doc, "groups", frozenset({"roles", "run_as", "sql", "limits"})),
            limits=DEFAULT_LIMITS.merged(limits),
            admins_exempt=exempt,
        )
    except InvalidInput as exc:
        raise InvalidInput(f"{source}: {exc}", field=exc.field) from None


def load_policy(path: Path | None) -> Policy:
    """Reads the policy file at `path`, or returns `DEFAULT_POLICY` when `path` is None.

    Raises InvalidInput naming the file (missing, unreadable, bad TOML) or the bad key.
    """
    if path is None:
        return DEFAULT_POLICY
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{path}: cannot read policy file ({exc})", field=str(path)) from None
    return parse_policy(text, source=str(path))


DEFAULT_POLICY_TOML = """\
[defaults]
roles = ["scheduler"]

[users.admin]
roles = ["admin"]

[groups.admins]
roles = ["admin"]
"""
DEFAULT_POLICY = parse_policy(DEFAULT_POLICY_TOML, source="default policy")
