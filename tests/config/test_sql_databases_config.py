"""`[databases.NAME]` in the node configuration and SQL grants in the policy file."""

from __future__ import annotations

from pathlib import Path

import pytest

from cronhive.auth.policy import parse_policy
from cronhive.config.server import load_server_config
from cronhive.errors import InvalidInput


def test_databases_are_read_and_hold_no_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "pw").write_text("s3cret-file\nignored\n")
    config = load_server_config(
        _write(
            tmp_path,
            '[databases.wh]\nurl = "postgresql://login@db/wh"\npassword_env = "WH_PW"\n'
            '[databases.pg]\nurl = "postgresql://login@db/pg"\n'
            f'password_file = "{tmp_path / "pw"}"\n'
            'identity = "postgres"\n',
        )
    )
    wh, pg = config.databases["wh"], config.databases["pg"]
    assert (wh.identity, pg.identity) == ("policy", "postgres")
    monkeypatch.setenv("WH_PW", "s3cret-env")
    assert wh.connect_args() == {"password": "s3cret-env"}
    assert pg.connect_args() == {"password": "s3cret-file"}
    assert "s3cret" not in repr(config)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "node.toml"
    path.write_text(f'data_dir = "{tmp_path}"\n{text}')
    return path


@pytest.mark.parametrize(
    ("table", "field"),
    [
        ('url = "postgresql://login:pw@db/wh"', "databases.wh.url"),
        ('url = "postgresql://login@db/wh?password=pw"', "databases.wh.url"),
        ('url = "mysql://db/wh"', "databases.wh.url"),
        ('url = "postgresql://db/wh"\nidentity = "ldap"', "databases.wh.identity"),
        ('url = "postgresql://db/wh"\nuser = "x"', "databases.wh.user"),
        (
            'url = "postgresql://db/wh"\npassword_env = "A"\npassword_file = "/f"',
            "databases.wh.password_env",
        ),
    ],
)
def test_bad_databases_name_their_key(tmp_path: Path, table: str, field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        load_server_config(_write(tmp_path, f"[databases.wh]\n{table}\n"))
    assert caught.value.field == field
    assert "pw" not in str(caught.value).replace("password", "")


def test_policy_sql_grants_go_to_users_their_policy_groups_and_owning_groups() -> None:
    policy = parse_policy(
        '[users.alice]\ngroups = ["data"]\n[users.alice.sql]\nwh = ["etl"]\n'
        '[groups.data.sql]\nwh = ["report"]\nlake = ["Loader"]\n'
    )
    assert policy.sql_role_allowed("user:alice", "wh", "etl")
    assert policy.sql_role_allowed("user:alice", "wh", "report")  # through group data
    assert policy.sql_role_allowed("group:data", "lake", "Loader")
    assert not policy.sql_role_allowed("group:data", "lake", "loader")  # case matters
    assert not policy.sql_role_allowed("group:data", "wh", "etl")  # alice's, not the group's
    assert not policy.sql_role_allowed("user:bob", "wh", "etl")
    assert not policy.sql_role_allowed("user:alice", "lake", "etl")
    with pytest.raises(InvalidInput, match=r"users\.alice\.sql"):
        parse_policy('[users.alice]\nsql = ["etl"]\n')


def test_role_placeholder_makes_one_login_per_role(tmp_path: Path) -> None:
    config = load_server_config(
        _write(
            tmp_path,
            '[databases.wh]\nurl = "postgresql://cronhive_{role}@db/wh"\n'
            'password_file = "/etc/pw-{role}"\n',
        )
    )
    wh = config.databases["wh"]
    assert wh.per_role
    etl = wh.for_role("Etl Team")
    assert etl.url == "postgresql://cronhive_Etl%20Team@db/wh"
    assert str(etl.password_file) == "/etc/pw-Etl Team"
