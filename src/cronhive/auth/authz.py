"""Authorization, in one place: every RPC and the web UI ask these functions, nothing else.

An owner is ``user:<name>`` or ``group:<name>``. A caller may access what they own, what
a group they belong to owns, and (admins) everything. Something a caller may not access
is reported as NotFound, exactly as if it did not exist: never "forbidden", which would
confirm that it exists. PermissionDenied is kept for actions on things the caller may
see or name themselves (creating a job for a group they are not in, an ungranted run_as,
scheduling without the scheduler role).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import replace

from cronhive.auth._paths import validate_name
from cronhive.auth.identity import Identity, Role
from cronhive.auth.policy import Policy, validate_run_as
from cronhive.errors import InvalidInput, NotFound, PermissionDenied
from cronhive.model import Execution, Node

__all__ = [
    "can_access",
    "check_can_schedule",
    "check_run_as",
    "group_owner",
    "nodes_as_seen",
    "parse_owner",
    "require_access",
    "resolve_owner",
    "user_owner",
    "visible_owners",
]


def user_owner(name: str) -> str:
    return f"user:{name}"


def group_owner(name: str) -> str:
    return f"group:{name}"


def parse_owner(owner: str) -> tuple[str, str]:
    """Splits ``user:<name>``/``group:<name>`` into (kind, name); InvalidInput otherwise."""
    kind, sep, name = owner.partition(":")
    if not sep or kind not in ("user", "group"):
        raise InvalidInput(
            f"owner {owner!r} must be 'user:<name>' or 'group:<name>'", field="owner"
        )
    validate_name(name, field="owner")
    return kind, name


def visible_owners(identity: Identity) -> frozenset[str] | None:
    """The owners whose things `identity` may see, or None for an admin (everything).

    A store filters listings with ``owner IN visible_owners(...)``.
    """
    if identity.is_admin:
        return None
    return frozenset({identity.owner, *(group_owner(g) for g in identity.groups)})


def can_access(identity: Identity, owner: str) -> bool:
    """True if `identity` may see and manage things owned by `owner`."""
    visible = visible_owners(identity)
    return visible is None or owner in visible


def require_access(identity: Identity, owner: str, what: str = "object") -> None:
    """Raises NotFound (never a "forbidden") unless `identity` may access `owner`'s things.

    `what` only shapes the message ("job", "execution").
    """
    if not can_access(identity, owner):
        raise NotFound(f"no such {what}")


def resolve_owner(identity: Identity, requested: str | None) -> str:
    """The owner a new thing gets: ``user:<me>`` by default, else `requested` if the caller
    may own on its behalf (themselves, a group they are in, or anything for an admin).

    Raises InvalidInput for a malformed owner, PermissionDenied for one the caller may
    not act for (the caller named it, so nothing is revealed by saying no).
    """
    if requested is None or requested == "":
        return identity.owner
    parse_owner(requested)
    if not can_access(identity, requested):
        raise PermissionDenied(
            f"you may only own things as {identity.owner} or a group you belong to, not {requested}"
        )
    return requested


def check_can_schedule(identity: Identity) -> None:
    """Raises PermissionDenied unless `identity` may create scheduled jobs (scheduler or
    admin role). Ad-hoc runs need no role."""
    if not identity.roles & {Role.SCHEDULER, Role.ADMIN}:
        raise PermissionDenied(f"{identity.user} lacks the scheduler role")


def check_run_as(identity: Identity, owner: str, run_as: str | None, policy: Policy) -> None:
    """Checks that things owned by `owner` may run as the OS user `run_as`.

    None/empty means "as the node's own user" and is always allowed. Otherwise the policy
    must grant `run_as` to `owner` (``*`` covers everyone but root); admins are not
    exempt, so root runs only where a policy names root explicitly. Raises NotFound if
    the caller may not access `owner`, InvalidInput for a malformed name,
    PermissionDenied when not granted.
    """
    parse_owner(owner)
    require_access(identity, owner)
    if run_as is None or run_as == "":
        return
    validate_run_as(run_as)
    if not policy.run_as_allowed(owner, run_as):
        raise PermissionDenied(f"{owner} may not run as {run_as!r} (not granted by the policy)")


def nodes_as_seen(
    nodes: Sequence[Node], visible: frozenset[str] | None, running: Iterable[Execution]
) -> list[Node]:
    """Nodes as a caller may see them. Nodes are everybody's, their runs are not: an admin
    (``visible`` None) sees each node's count of running runs, anyone else only how many
    of the runs they may see (``running``, the visible ones in state running) it runs."""
    if visible is None:
        return list(nodes)
    mine = Counter(e.node_id for e in running)
    return [replace(n, running=mine.get(n.id, 0)) for n in nodes]
