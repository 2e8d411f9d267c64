"""`cronhive certs init|issue` through click's runner and once as a real process."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.x509.oid import NameOID

from cronhive.auth.certs import CertPaths, default_ca_dir, load_pair
from cronhive.cli import cli


def _run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def test_init_then_issue(tmp_path: Path) -> None:
    d = tmp_path / "certs"
    code, out, _ = _run(
        "certs", "init", "--dir", str(d), "--name", "cron.example", "--ip", "10.0.0.1"
    )
    assert code == 0, out
    paths = CertPaths(dir=d)
    load_pair(paths.server_cert, paths.server_key)
    code, out, _ = _run(
        "certs", "issue", "alice", "--dir", str(d), "--group", "ops", "--admin", "--days", "3"
    )
    assert code == 0
    assert out.split() == [str(d / "alice.crt"), str(d / "alice.key")]
    cert = load_pair(d / "alice.crt", d / "alice.key").cert
    ous = {a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)}
    assert ous == {"ops", "admins"}
    assert stat.S_IMODE((d / "alice.key").stat().st_mode) == 0o600


def test_default_dir_comes_from_environment(tmp_path: Path) -> None:
    d = tmp_path / "from-env"
    code, _, _ = _run("certs", "init", env={"CRONHIVE_CERTS": str(d)})
    assert code == 0
    assert (d / "ca.crt").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["certs", "issue", "a/b"], "NAME 'a/b' must be"),
        (["certs", "issue", ""], "NAME '' must be"),
        (["certs", "issue", "x" * 65], "must be 1-64 characters"),
        (["certs", "issue", "bob", "--group", "bad group"], "group 'bad group'"),
        (["certs", "issue", "bob", "--days", "0"], "days must be between"),
        (["certs", "issue", "ca"], "reserved"),
        (["certs", "init"], "a CA already exists"),
        (["certs", "init", "--ip", "nope"], "a CA already exists"),
        (["certs", "init", "--force", "--ip", "nope"], "bad IP address 'nope'"),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    d = tmp_path / "certs"
    assert _run("certs", "init", "--dir", str(d))[0] == 0
    before = {p.name: p.read_bytes() for p in d.iterdir()}
    code, out, err = _run(*args, "--dir", str(d))
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and message in err, err
    assert {p.name: p.read_bytes() for p in d.iterdir()} == before


def test_issue_without_a_ca_names_the_file(tmp_path: Path) -> None:
    code, _, err = _run("certs", "issue", "bob", "--dir", str(tmp_path))
    assert code == 2
    # The CA is looked for where `certs init` keeps it: beside the directory, not in it.
    assert f"{default_ca_dir(tmp_path) / 'ca.crt'}: no such file" in err


def test_real_process(tmp_path: Path) -> None:
    d = tmp_path / "certs"
    env = {**os.environ, "CRONHIVE_CERTS": str(d)}
    cmd = [sys.executable, "-m", "cronhive", "certs"]
    done = subprocess.run([*cmd, "init"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    done = subprocess.run(
        [*cmd, "issue", "bob", "--group", "data"], env=env, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE((d / "bob.key").stat().st_mode) == 0o600
    done = subprocess.run([*cmd, "init"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.startswith("cronhive: a CA already exists")
