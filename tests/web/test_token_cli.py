"""`cronhive token create|ls|revoke` through the real gRPC API, and what the token then
opens (or no longer opens) in the web's JSON API."""

from __future__ import annotations

import json
import subprocess
import sys

from webkit import WebNode

from cronhive.auth.certs import issue_client_files


def _run(node: WebNode, user: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The real command, as a process (its own event loop and exit code)."""
    argv = [sys.executable, "-m", "cronhive", "--server", f"127.0.0.1:{node.api_port}"]
    argv += ["--certs", str(node.certs.dir), "--as", user, "token", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def test_create_use_list_and_revoke_a_token(node: WebNode) -> None:
    issue_client_files(node.certs.dir, user="kim", groups=["ops"], days=5)
    issue_client_files(node.certs.dir, user="lee", days=5)
    node.job("group:ops", "ops-rotate", ["true"])

    made = _run(node, "kim", "create", "--name", "laptop", "--days", "7")
    assert made.returncode == 0, made.stderr
    text = made.stdout.strip()
    assert text.startswith("chv_") and "shown only now" in made.stderr
    # The token carries the certificate's groups: kim sees the ops job through it.
    jobs = node.http(text).get(node.url("/api/v1/jobs")).json()["jobs"]
    assert [j["name"] for j in jobs] == ["ops-rotate"]

    listed = _run(node, "kim", "ls", "--json")
    [entry] = json.loads(listed.stdout)
    assert entry["name"] == "laptop" and entry["revoked_at"] is None
    assert entry["expires_at"] and entry["last_used_at"]
    assert text not in listed.stdout

    assert json.loads(_run(node, "lee", "ls", "--json").stdout) == []
    foreign = _run(node, "lee", "revoke", "laptop")
    assert foreign.returncode == 3 and "no such token" in foreign.stderr
    assert _run(node, "lee", "revoke", entry["id"]).returncode == 3

    assert _run(node, "kim", "create", "--name", "laptop").returncode == 1  # name taken
    bad = _run(node, "kim", "create", "--name", "has space")
    assert bad.returncode == 2 and "name" in bad.stderr

    gone = _run(node, "kim", "revoke", "laptop")
    assert gone.returncode == 0 and "revoked laptop" in gone.stdout
    assert node.http(text).get(node.url("/api/v1/jobs")).status_code == 401
    assert "revoked" in _run(node, "kim", "ls").stdout
