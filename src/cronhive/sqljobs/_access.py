"""The role rule: who may run SQL as which role on which database.

SQL owned by `owner` may run as `role` on database `D` when the policy grants it
(`Policy.sql_role_allowed`), or, on a database configured with ``identity = "postgres"``,
when PostgreSQL says the owner's name is a member of the role there:
``pg_has_role(<name>, <role>, 'MEMBER')``, asked on the node's own login connection. The
owner's name is the cronhive user (``user:alice`` -> ``alice``) or group (``group:data``
-> ``data``): the same name must exist as a PostgreSQL role for that rule to hold.

Asked when a job is created or changed (the API answers PERMISSION_DENIED) and again when
each run starts (the run is recorded failed with the reason): a revoked membership or
grant stops the next run.
"""

from __future__ import annotations

from typing import Any

import psycopg

from cronhive.auth.policy import Policy
from cronhive.sqljobs._targets import SqlTarget

__all__ = ["refusal"]


async def refusal(
    conn: psycopg.AsyncConnection[Any] | None,
    target: SqlTarget,
    policy: Policy,
    owner: str,
    role: str,
) -> str | None:
    """Why `owner` may not use `role` on `target`, or None when it may. `conn`: a
    connection to the target as the node's login role (needed for identity "postgres";
    psycopg errors of that query propagate, e.g. the connection failed)."""
    if policy.sql_role_allowed(owner, target.name, role):
        return None
    name = owner.partition(":")[2]
    if target.identity == "postgres" and conn is not None:
        async with conn.cursor() as cur:
            # pg_has_role raises for a name that is no role; ask only about roles that exist.
            await cur.execute(
                "SELECT CASE WHEN to_regrole(quote_ident(%s)) IS NULL"
                " OR to_regrole(quote_ident(%s)) IS NULL THEN NULL"
                " ELSE pg_has_role(%s, %s, 'MEMBER') END",
                (name, role, name, role),
            )
            row = await cur.fetchone()
        member = row[0] if row else None
        if member:
            return None
        if member is None:
            return (
                f"{owner} may not run SQL as role {role!r} on database {target.name!r}: "
                f"no PostgreSQL role {name!r} or {role!r} there"
            )
        return (
            f"{owner} may not run SQL as role {role!r} on database {target.name!r}: "
            f"{name!r} is not a member of {role!r} (pg_has_role)"
        )
    return f"{owner} may not run SQL as role {role!r} on database {target.name!r} (no policy grant)"
