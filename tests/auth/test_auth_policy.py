"""Policy file and authorization, table-driven: owner, group member, other user, admin."""

from __future__ import annotations

from pathlib import Path

import pytest

from cronhive.auth.authz import (
    can_access,
    check_can_schedule,
    check_run_as,
    parse_owner,
    require_access,
    resolve_owner,
    visible_owners,
)
from cronhive.auth.identity import Identity, Role, identity_from_peercert
from cronhive.auth.policy import DEFAULT_POLICY, load_policy, parse_policy
from cronhive.errors import InvalidInput, NotFound, PermissionDenied

POLICY = parse_policy(
    """
[users.alice]
roles = ["scheduler"]
groups = ["data"]
run_as = ["etl"]

[users.carol]
run_as = ["*"]

[groups.ops]
roles = ["scheduler", "admin"]
run_as = ["backup"]

[groups.data]
run_as = ["etl", "root"]
"""
)

ALICE = POLICY.identity("alice")  # scheduler, member of data via the policy
BOB = POLICY.identity("bob", frozenset({"data"}))  # member of data via his certificate
CAROL = POLICY.identity("carol")  # no role at all (the file has no [defaults])
OPS = POLICY.identity("olga", frozenset({"ops"}))  # admin through group ops


def test_policy_builds_identities() -> None:
    assert (
        Identity(user="alice", groups=frozenset({"data"}), roles=frozenset({Role.SCHEDULER}))
        == ALICE
    )
    assert BOB.roles == frozenset() and BOB.groups == {"data"}
    assert OPS.roles == {Role.SCHEDULER, Role.ADMIN}


@pytest.mark.parametrize(
    ("who", "owner", "allowed"),
    [
        (ALICE, "user:alice", True),  # owner
        (ALICE, "group:data", True),  # member (policy group)
        (BOB, "group:data", True),  # member (certificate OU)
        (BOB, "user:alice", False),  # another user's
        (CAROL, "group:data", False),  # not a member
        (CAROL, "user:alice", False),
        (OPS, "user:alice", True),  # admin sees all
        (OPS, "group:data", True),
    ],
)
def test_access(who: Identity, owner: str, allowed: bool) -> None:
    assert can_access(who, owner) is allowed
    if allowed:
        require_access(who, owner)
    else:
        with pytest.raises(NotFound, match="no such job") as info:
            require_access(who, owner, "job")
        # Never a "forbidden": the error must not tell a hidden thing from a missing one.
        assert not isinstance(info.value, PermissionDenied)


@pytest.mark.parametrize(
    ("who", "visible"),
    [
        (ALICE, {"user:alice", "group:data"}),
        (BOB, {"user:bob", "group:data"}),
        (CAROL, {"user:carol"}),
        (OPS, None),
    ],
)
def test_visible_owners(who: Identity, visible: set[str] | None) -> None:
    assert visible_owners(who) == visible


@pytest.mark.parametrize(
    ("who", "requested", "outcome"),
    [
        (ALICE, None, "user:alice"),
        (ALICE, "", "user:alice"),
        (ALICE, "user:alice", "user:alice"),
        (ALICE, "group:data", "group:data"),
        (ALICE, "group:ops", PermissionDenied),
        (BOB, "user:alice", PermissionDenied),
        (OPS, "user:alice", "user:alice"),
        (OPS, "group:anything", "group:anything"),
        (ALICE, "alice", InvalidInput),
        (ALICE, "role:alice", InvalidInput),
        (OPS, "user:", InvalidInput),
        (OPS, "user:a/b", InvalidInput),
    ],
)
def test_resolve_owner(who: Identity, requested: str | None, outcome: object) -> None:
    if isinstance(outcome, str):
        assert resolve_owner(who, requested) == outcome
    else:
        with pytest.raises(outcome):  # type: ignore[call-overload]
            resolve_owner(who, requested)


@pytest.mark.parametrize(("who", "may"), [(ALICE, True), (BOB, False), (CAROL, False), (OPS, True)])
def test_check_can_schedule(who: Identity, may: bool) -> None:
    if may:
        check_can_schedule(who)
    else:
        with pytest.raises(PermissionDenied, match="scheduler role"):
            check_can_schedule(who)


@pytest.mark.parametrize(
    ("who", "owner", "run_as", "outcome"),
    [
        (ALICE, "user:alice", None, None),  # the node's own user: always
        (ALICE, "user:alice", "", None),
        (ALICE, "user:alice", "etl", None),  # granted to the owner
        (ALICE, "user:alice", "backup", PermissionDenied),
        (ALICE, "user:alice", "root", PermissionDenied),
        (ALICE, "group:data", "root", None),  # root only where named explicitly
        (BOB, "group:data", "etl", None),  # group grant, member
        (BOB, "user:bob", "etl", PermissionDenied),  # the grant is the group's, not his
        (BOB, "user:alice", "etl", NotFound),  # not his to see
        (CAROL, "user:carol", "anyone", None),  # "*" ...
        (CAROL, "user:carol", "root", PermissionDenied),  # ... is everyone but root
        (CAROL, "user:carol", "0", PermissionDenied),
        (OPS, "group:ops", "backup", None),
        (OPS, "user:alice", "backup", PermissionDenied),  # admins are not exempt
        (OPS, "user:alice", "etl", None),  # but may act for any owner
        (ALICE, "user:alice", "bad name", InvalidInput),
    ],
)
def test_check_run_as(who: Identity, owner: str, run_as: str | None, outcome: object) -> None:
    if outcome is None:
        check_run_as(who, owner, run_as, POLICY)
    else:
        with pytest.raises(outcome):  # type: ignore[call-overload]
            check_run_as(who, owner, run_as, POLICY)


def test_default_policy() -> None:
    admin = identity_from_peercert({"subject": ((("commonName", "admin"),),)})
    assert admin.roles == {Role.ADMIN, Role.SCHEDULER}
    admins = identity_from_peercert(
        {"subject": ((("commonName", "zoe"),), (("organizationalUnitName", "admins"),))}
    )
    assert admins.is_admin
    user = identity_from_peercert({"subject": ((("commonName", "dave"),),)})
    assert user.roles == {Role.SCHEDULER}
    assert not DEFAULT_POLICY.run_as_allowed(user.owner, "dave")
    assert load_policy(None) is DEFAULT_POLICY


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[users.alice\n", "not valid TOML"),
        ("[users.alice]\nroles = ['wizard']\n", r"users\.alice\.roles: unknown role 'wizard'"),
        ("[users.alice]\nroles = 'admin'\n", r"users\.alice\.roles: must be a list of strings"),
        ("[users.alice]\ncolour = 'red'\n", r"users\.alice\.colour: unknown key"),
        ("[groups.ops]\ngroups = ['x']\n", r"groups\.ops\.groups: unknown key"),
        ("[users.alice]\nrun_as = ['no way']\n", r"users\.alice\.run_as: 'no way'"),
        ("[users.alice]\ngroups = ['a/b']\n", r"users\.alice\.groups"),
        ('[users."a b"]\n', r"users\.a b"),
        ("[roles]\n", "roles: unknown key"),
        ("users = 3\n", "users: must be a table"),
        ("[defaults]\nrun_as = ['x']\n", "defaults: may only hold roles"),
    ],
)
def test_bad_policy_names_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(text)
    with pytest.raises(InvalidInput, match=message) as info:
        load_policy(path)
    assert str(info.value).startswith(str(path))


def test_missing_policy_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=r"nope\.toml: cannot read policy file"):
        load_policy(tmp_path / "nope.toml")


def test_defaults_section_grants_everyone() -> None:
    policy = parse_policy("[defaults]\nroles = ['scheduler']\n")
    assert policy.identity("anyone").roles == {Role.SCHEDULER}


@pytest.mark.parametrize("owner", ["user:alice", "group:ops"])
def test_parse_owner(owner: str) -> None:
    kind, name = parse_owner(owner)
    assert f"{kind}:{name}" == owner
