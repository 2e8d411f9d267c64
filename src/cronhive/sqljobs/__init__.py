"""SQL jobs: a statement run on a configured PostgreSQL database as a role.

Public API::

    sql = SqlJobs(targets, policy, grace=10.0)     # targets: parse_databases(config)
    await sql.check(owner, spec)                   # create/edit: InvalidInput, PermissionDenied
    handle = sql.start(run_id=..., owner=..., spec=..., timeout=..., sink=..., output_cap=...)
    await handle.wait() / await handle.stop(grace)  # like runner.RunHandle

Layout: `_targets` (the node's `[databases.NAME]`), `_access` (the role rule),
`_executor` (one run), `_format` (the bytes of its output). See docs/sql-jobs.md.

psycopg and the executor are imported with the first SQL job (or `SqlRun`, `EXIT_*`):
a node that runs none never loads them (~10 MB of an idle SQLite node).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from cronhive import runner
from cronhive.auth.policy import Policy
from cronhive.errors import CronhiveError, InvalidInput, PermissionDenied, StoreUnavailable
from cronhive.model import SqlSpec
from cronhive.sqljobs._targets import IDENTITIES, SqlTarget, parse_databases

if TYPE_CHECKING:
    from cronhive.sqljobs._executor import (
        EXIT_CANCELED,
        EXIT_CONNECTION,
        EXIT_REFUSED,
        EXIT_SQL_ERROR,
        SqlRun,
    )

__all__ = [
    "EXIT_CANCELED",
    "EXIT_CONNECTION",
    "EXIT_REFUSED",
    "EXIT_SQL_ERROR",
    "IDENTITIES",
    "SqlJobs",
    "SqlRun",
    "SqlTarget",
    "parse_databases",
]

_LAZY = frozenset({"EXIT_CANCELED", "EXIT_CONNECTION", "EXIT_REFUSED", "EXIT_SQL_ERROR", "SqlRun"})


def _no_driver(exc: ImportError) -> CronhiveError:
    return CronhiveError(f"SQL jobs need psycopg, which this node cannot import: {exc}")


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module("cronhive.sqljobs._executor"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class SqlJobs:
    """The node's SQL side: its target databases and the policy that grants roles."""

    def __init__(
        self, targets: Mapping[str, SqlTarget], policy: Policy, *, grace: float = 10.0
    ) -> None:
        self.targets = dict(targets)
        self.policy = policy
        self.grace = grace

    def target(self, database: str) -> SqlTarget:
        try:
            return self.targets[database]
        except KeyError:
            known = ", ".join(sorted(self.targets)) or "none"
            raise InvalidInput(
                f"sql.database: {database[:64]!r} is not a database of this node (known: {known})",
                field="sql.database",
            ) from None

    async def check(self, owner: str, spec: SqlSpec) -> None:
        """Raises PermissionDenied unless `owner` may run as `spec.role` on its database
        (see `_access`), InvalidInput for an unknown database, StoreUnavailable when the
        database must be asked and cannot be reached."""
        target = self.target(spec.database).for_role(spec.role)
        if self.policy.sql_role_allowed(owner, target.name, spec.role):
            return
        try:
            import psycopg

            from cronhive.sqljobs._access import refusal
            from cronhive.sqljobs._executor import ConnectFailed, connect
        except ImportError as exc:
            raise _no_driver(exc) from exc
        why: str | None
        if target.identity == "postgres":
            try:
                async with await connect(target, "cronhive check") as conn:
                    why = await refusal(conn, target, self.policy, owner, spec.role)
            except ConnectFailed as exc:
                raise StoreUnavailable(f"cannot check role {spec.role!r}: {exc}") from None
            except psycopg.Error as exc:
                raise StoreUnavailable(
                    f"cannot check role {spec.role!r} on database {target.name!r}: "
                    f"{type(exc).__name__}"
                ) from None
        else:
            why = await refusal(None, target, self.policy, owner, spec.role)
        if why is not None:
            raise PermissionDenied(why)

    def start(
        self,
        *,
        run_id: str,
        owner: str,
        spec: SqlSpec,
        timeout: float | None,
        sink: runner.OutputSink | None,
        output_cap: int | None,
        slot: str | None = None,
    ) -> SqlRun:
        """Starts the run (the role rule is checked again inside it: a refusal ends it
        failed with the reason, exit 3). `slot` names what every attempt of this run
        shares (see `_executor`, fencing); None: no fencing lock."""
        try:
            from cronhive.sqljobs._executor import SqlRun
        except ImportError as exc:
            raise _no_driver(exc) from exc
        target = self.targets.get(spec.database)
        return SqlRun(
            run_id=run_id,
            owner=owner,
            spec=spec,
            target=None if target is None else target.for_role(spec.role),
            policy=self.policy,
            timeout=timeout,
            grace=self.grace,
            sink=sink,
            output_cap=output_cap,
            slot=slot,
        )
