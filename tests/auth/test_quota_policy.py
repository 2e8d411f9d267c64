"""The policy's per-owner limits: defaults, overrides, admins, groups, bad values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cronhive.auth import DEFAULT_POLICY, Identity, Role
from cronhive.auth.policy import UNLIMITED, Limits, load_policy, parse_policy
from cronhive.auth.quotas import run_caps, shortest_gap
from cronhive.errors import InvalidInput
from cronhive.schedule import parse_schedule

POLICY = """
[limits]
concurrent_runs = 4
queued_runs = 10
jobs = 3
shortest_interval = "5m"

[users.bob.limits]
concurrent_runs = 1
shortest_interval = "unlimited"

[users.admin]
roles = ["admin"]

[users.boss]
roles = ["admin"]
[users.boss.limits]
jobs = 1000

[groups.ops]
roles = ["admin"]

[groups.data.limits]
jobs = 50
"""


def test_the_defaults_apply_without_a_file_and_without_a_limits_table() -> None:
    assert DEFAULT_POLICY.limits == Limits(
        concurrent_runs=256, queued_runs=500, jobs=500, shortest_interval=timedelta(minutes=1)
    )
    assert DEFAULT_POLICY.limits_for("user:dave") == DEFAULT_POLICY.limits
    assert parse_policy("[defaults]\nroles = []\n").limits_for("user:dave") == Limits()
    # The default admins are exempt.
    assert DEFAULT_POLICY.limits_for("user:admin") == UNLIMITED
    assert DEFAULT_POLICY.limits_for("group:admins") == UNLIMITED


def test_owners_get_the_defaults_their_own_limits_and_admins_none() -> None:
    policy = parse_policy(POLICY)
    base = Limits(concurrent_runs=4, queued_runs=10, jobs=3, shortest_interval=timedelta(minutes=5))
    assert policy.limits_for("user:carol") == base
    assert policy.limits_for("user:bob") == Limits(
        concurrent_runs=1, queued_runs=10, jobs=3, shortest_interval=None
    )
    assert policy.limits_for("user:admin") == UNLIMITED
    # An admin's own limits still apply over the exemption.
    assert policy.limits_for("user:boss") == Limits(
        concurrent_runs=None, queued_runs=None, jobs=1000, shortest_interval=None
    )
    # Group-owned things count for the group: its limits, not its members'.
    assert policy.limits_for("group:data").jobs == 50
    assert policy.limits_for("group:ops") == UNLIMITED
    assert policy.limits_for("group:other") == base
    # An admin by certificate group is exempt where the caller is known.
    zoe = Identity(user="zoe", groups=frozenset({"ops"}), roles=frozenset({Role.ADMIN}))
    assert policy.limits_for("user:zoe", zoe) == UNLIMITED
    assert policy.limits_for("user:zoe") == base


def test_admins_may_be_limited_like_everyone() -> None:
    policy = parse_policy(
        "[limits]\njobs = 2\nadmins_exempt = false\n[users.admin]\nroles=['admin']"
    )
    assert policy.limits_for("user:admin").jobs == 2


def test_the_claims_caps_name_every_owner_whose_cap_differs() -> None:
    caps = run_caps(parse_policy(POLICY))
    assert caps.default == 4
    assert dict(caps.owners) == {
        "user:bob": 1,
        "user:admin": None,
        "user:boss": None,
        "group:ops": None,
    }
    assert caps.cap_of("user:carol") == 4
    everyone_admin = parse_policy("[defaults]\nroles = ['admin']\n")
    assert run_caps(everyone_admin).default is None


NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("kind", "expression", "gap"),
    [
        ("interval", "90s", timedelta(seconds=90)),
        ("cron", "*/5 * * * *", timedelta(minutes=5)),
        ("cron", "*/7 * * * *", timedelta(minutes=4)),  # :56 -> :00
        ("cron", "0 3 * * *", timedelta(days=1)),
        ("cron", "* 3 29 2 *", timedelta(minutes=1)),  # only on 29 February, every minute
        ("once", "2026-06-01T00:00:00Z", None),
    ],
)
def test_a_schedules_shortest_gap(kind: str, expression: str, gap: timedelta | None) -> None:
    schedule = parse_schedule(kind, expression, timezone="UTC")
    assert shortest_gap(schedule, NOW) == gap


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[limits]\njobs = 0\n", r"limits\.jobs: must be a whole number from 1"),
        ("[limits]\njobs = -3\n", r"limits\.jobs: must be a whole number"),
        ("[limits]\nqueued_runs = 'lots'\n", r"limits\.queued_runs: must be a whole number"),
        ("[limits]\nconcurrent_runs = true\n", r"limits\.concurrent_runs: must be a whole"),
        ("[limits]\nconcurrent_runs = 2.5\n", r"limits\.concurrent_runs: must be a whole"),
        ("[limits]\nshortest_interval = '5 parsecs'\n", r"limits\.shortest_interval: .*bad"),
        ("[limits]\nshortest_interval = [1]\n", r"limits\.shortest_interval: must be a dur"),
        ("[limits]\nspeed = 3\n", r"limits\.speed: unknown key"),
        ("[limits]\nadmins_exempt = 'yes'\n", r"limits\.admins_exempt: must be true or false"),
        ("limits = 3\n", r"limits: must be a table"),
        ("[users.bob.limits]\njobs = 0\n", r"users\.bob\.limits\.jobs: must be a whole"),
        ("[groups.ops.limits]\nnodes = 1\n", r"groups\.ops\.limits\.nodes: unknown key"),
    ],
)
def test_bad_limits_name_the_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(text)
    with pytest.raises(InvalidInput, match=message) as info:
        load_policy(path)
    assert str(info.value).startswith(str(path))
