"""Quotas seen from the CLI, on a real `cronhive server` with a policy file: a refused
run or job exits 1 with the reason; the cap on running runs holds a run queued; a bad
limit in the policy stops the server at start, naming the file and the key."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from clikit import PYTHON, clean_env, free_port, running_node

POLICY = """
[limits]
concurrent_runs = 1
queued_runs = 1
jobs = 1
shortest_interval = "5m"
admins_exempt = false     # the CLI's default certificate is the admin's

[users.admin]
roles = ["admin"]
"""


def test_refusals_exit_1_with_the_reason_and_the_cap_holds_a_run_queued(
    tmp_path: Path,
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    with running_node(tmp_path / "data", extra=["--policy", str(policy)]) as cli:
        running = cli.ok("run", "--", "sleep", "60").strip()
        deadline = time.monotonic() + 20
        while json.loads(cli.ok("status", "--json", running))["state"] != "running":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        held = cli.ok("run", "--", "true").strip()  # queued: user:admin is at its cap
        refused = cli("run", "--", "true")
        assert refused.returncode == 1
        assert "limits.queued_runs = 1" in refused.stderr
        time.sleep(1.5)  # past the worker's poll: the cap, not a late claim, holds it
        assert json.loads(cli.ok("status", "--json", held))["state"] == "queued"
        often = cli("add", "often", "--every", "1m", "--", "true")
        assert often.returncode == 2
        assert "limits.shortest_interval = 5 minutes" in often.stderr
        cli.ok("add", "one", "--", "true")
        second = cli("add", "two", "--", "true")
        assert (second.returncode, "limits.jobs = 1" in second.stderr) == (1, True)
        cli.ok("stop", running)
        deadline = time.monotonic() + 20  # its place freed, the held run starts
        while json.loads(cli.ok("status", "--json", held))["state"] in ("queued", "running"):
            assert time.monotonic() < deadline
            time.sleep(0.1)


def test_a_bad_limit_stops_the_server_at_start(tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text("[limits]\nqueued_runs = 0\n")
    done = subprocess.run(
        [PYTHON, "-m", "cronhive", "server", "--data-dir", str(tmp_path / "data"),
         "--listen", f"127.0.0.1:{free_port()}", "--policy", str(policy)],
        capture_output=True, text=True, env=clean_env(tmp_path), timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode != 0
    assert f"{policy}: limits.queued_runs: must be a whole number from 1" in done.stderr
