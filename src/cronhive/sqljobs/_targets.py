"""Target databases: `[databases.NAME]` of the node configuration.

    [databases.warehouse]
    url = "postgresql://cronhive_login@db.example.org:5432/warehouse"
    password_env = "WAREHOUSE_PASSWORD"     # or password_file = "/etc/cronhive/wh.pw"
    identity = "policy"                     # or "postgres": pg_has_role decides

The URL names the node's own login role and never holds a password (a password in it
is refused: the configuration file is not a secret store, and URLs end up in logs). The
password comes from the environment variable or the file (first line), read when the
node connects, so a rotated file is picked up without a restart; without either,
libpq's own ways apply (~/.pgpass, PGPASSWORD, a client certificate).

``{role}`` in the URL (and in password_file) is replaced by the job's role: one login
role per target role (``cronhive_{role}``, member of that role only), so a statement
that runs ``RESET ROLE`` or ``SET ROLE`` falls back to a login that can become nothing
else (docs/sql-jobs.md, "One login or one per role").
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

from cronhive.errors import InvalidInput

__all__ = ["IDENTITIES", "SqlTarget", "parse_databases"]

IDENTITIES = ("policy", "postgres")
ROLE_FIELD = "{role}"
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,62}")
_KEYS = frozenset({"url", "password_env", "password_file", "identity"})


@dataclass(frozen=True, kw_only=True)
class SqlTarget:
    """One database SQL jobs may name. `repr` shows no secret (none is held)."""

    name: str
    url: str
    password_env: str | None = None
    password_file: Path | None = None
    identity: str = "policy"  # who decides the role rule: the policy, or PostgreSQL too

    @property
    def per_role(self) -> bool:
        """Whether the login depends on the job's role (``{role}`` in the URL)."""
        return ROLE_FIELD in self.url

    def for_role(self, role: str) -> SqlTarget:
        """This target with ``{role}`` filled in (URL-quoted in the URL)."""
        if not self.per_role:
            return self
        file = self.password_file
        return replace(
            self,
            url=self.url.replace(ROLE_FIELD, quote(role, safe="")),
            password_file=None if file is None else Path(str(file).replace(ROLE_FIELD, role)),
        )

    def password(self) -> str | None:
        """The login role's password, read now (never cached, never logged)."""
        if self.password_env is not None:
            return os.environ.get(self.password_env)
        if self.password_file is not None:
            text = self.password_file.read_text(encoding="utf-8")
            return text.splitlines()[0] if text else ""
        return None

    def connect_args(self) -> dict[str, Any]:
        """Keyword arguments for psycopg's connect, the password among them."""
        secret = self.password()
        return {} if secret is None else {"password": secret}


def parse_databases(value: Any) -> dict[str, SqlTarget]:
    """The `[databases]` table of a node configuration; InvalidInput naming the bad key."""
    if not isinstance(value, Mapping):
        raise InvalidInput("databases: must be a table of [databases.NAME]", field="databases")
    return {name: _target(name, table) for name, table in value.items()}


def _target(name: str, table: Any) -> SqlTarget:
    key = f"databases.{name}"
    if not _NAME.fullmatch(name):
        raise InvalidInput(f"{key}: bad database name (A-Z a-z 0-9 _ . -)", field=key)
    if not isinstance(table, Mapping):
        raise InvalidInput(f"{key}: must be a table", field=key)
    unknown = sorted(set(table) - _KEYS)
    if unknown:
        raise InvalidInput(f"{key}.{unknown[0]}: unknown key", field=f"{key}.{unknown[0]}")
    url = table.get("url")
    if not isinstance(url, str) or not url.startswith(("postgresql://", "postgres://")):
        raise InvalidInput(f"{key}.url: expected postgresql://USER@HOST/DB", field=f"{key}.url")
    try:
        from psycopg.conninfo import conninfo_to_dict  # only a node with [databases] loads it
    except ImportError as exc:
        raise InvalidInput(
            f"{key}: SQL jobs need psycopg, which cannot be imported: {exc}"
        ) from exc
    try:
        parts = conninfo_to_dict(url.replace(ROLE_FIELD, "role"))
    except Exception:  # psycopg raises ProgrammingError; the message may quote the URL
        raise InvalidInput(f"{key}.url: not a valid PostgreSQL URL", field=f"{key}.url") from None
    if "password" in parts:
        raise InvalidInput(
            f"{key}.url: holds a password; give it with password_env or password_file",
            field=f"{key}.url",
        )
    identity = table.get("identity", "policy")
    if identity not in IDENTITIES:
        raise InvalidInput(
            f"{key}.identity: expected one of {', '.join(IDENTITIES)}", field=f"{key}.identity"
        )
    env, file = table.get("password_env"), table.get("password_file")
    if env is not None and file is not None:
        raise InvalidInput(
            f"{key}: give password_env or password_file, not both", field=f"{key}.password_env"
        )
    if env is not None and not (isinstance(env, str) and re.fullmatch(r"[A-Za-z_]\w*", env)):
        raise InvalidInput(f"{key}.password_env: a variable name", field=f"{key}.password_env")
    if file is not None and not isinstance(file, str):
        raise InvalidInput(f"{key}.password_file: a path", field=f"{key}.password_file")
    return SqlTarget(
        name=name,
        url=url,
        password_env=env,
        password_file=Path(file) if file is not None else None,
        identity=identity,
    )
