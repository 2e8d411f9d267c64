"""SQL jobs: a statement run on a configured PostgreSQL database as a role.

Public API::

    sql = SqlJobs(targets, policy, grace=10.0)     # targets: parse_databases(config)
    await sql.check(owner, spec)                   # create/edit: InvalidInput, PermissionDenied
    handle = sql.start(run_id=..., owner=..., spec=..., timeout=..., sink=..., output_cap=...)
    await handle.wait() / await handle.stop(grace)  # like runner.RunHandle

Layout: `_targets` (the node's `[databases.NAME]`), `_access` (the role rule),
`_executor` (one run), `_format` (the bytes of its output). See docs/sql-jobs.md.
"""

from __future__ import annotations

from collections.abc import Mapping

import psycopg

from cronhive import runner
from cronhive.auth.policy import Policy
from cronhive.errors import InvalidInput, PermissionDenied, StoreUnavailable
from cronhive.model import SqlSpec
from cronhive.sqljobs._access import refusal
from cronhive.sqljobs._executor import (
    EXIT_CANCELED,
    EXIT_CONNECTION,
    EXIT_REFUSED,
    EXIT_SQL_ERROR,
    ConnectFailed,
    SqlRun,
    connect,
)
from cronhive.sqljobs._targets import IDENTITIES, SqlTarget, parse_databases

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
