"""A job's own resource limits from the terminal, against a real node with real processes:
a memory hog fails (not the node), a fork loop is stopped, the record says what applied;
the flags on add/edit/run, `apply -f`'s `limits` table, show and --json, refusals."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from clikit import Cli, running_node

# ~300 MB for real (bytearray touches every page), then a word on success.
HOG = "b = bytearray(300 * 1024 * 1024); print('allocated', len(b))"
# 50 children; without a cap on processes all start, with one the shell cannot fork.
FORKS = "for i in $(seq 50); do sleep 1 & done; wait; echo all 50"


@pytest.fixture(scope="module")
def lcli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    home = tmp_path_factory.mktemp("limits")
    config = home / "node.toml"
    config.write_text('[limits]\nmemory = "1G"\n')  # every run's, and the jobs' ceiling
    with running_node(home / "data", extra=("--config", str(config))) as c:
        yield c


def _run_id(stderr: str) -> str:
    return next(line.split()[1] for line in stderr.splitlines() if line.startswith("run "))


def _status(cli: Cli, run_id: str) -> dict[str, Any]:
    value = json.loads(cli.ok("status", "--json", run_id))
    assert isinstance(value, dict)
    return value


def test_a_memory_hog_fails_under_its_limit_and_the_node_lives_on(lcli: Cli) -> None:
    done = lcli("run", "-f", "--memory", "64M", "--", "python3", "-c", HOG)
    assert done.returncode != 0, done
    run = _status(lcli, _run_id(done.stderr))
    assert run["state"] == "failed"
    assert run["limits"] == {"memory_bytes": 64 << 20}
    applied = run["limits_applied"]
    assert "memory 64M (" in applied, applied
    if applied.startswith("rlimit"):  # cgroup v1 host: RLIMIT_AS, Python's MemoryError
        assert "MemoryError" in done.stderr and run["exit_code"] == 1
    # The node is fine, and without the job's limit (under the node's 1G) it allocates.
    assert "up" in lcli.ok("nodes")
    ok = lcli("run", "-f", "--", "python3", "-c", HOG)
    assert ok.returncode == 0 and "allocated 314572800" in ok.stdout, ok


def test_max_procs_stops_a_fork_loop(lcli: Cli) -> None:
    lcli.ok("add", "forks", "--max-procs", "5", "--shell", "--", FORKS)
    capped = lcli("trigger", "-f", "forks", timeout=60)
    assert capped.returncode != 0, capped
    assert "all 50" not in capped.stdout
    assert "fork" in capped.stderr.lower(), capped.stderr
    run = json.loads(lcli.ok("history", "--json", "forks", "-n", "1"))[0]
    assert "processes 5 (" in run["limits_applied"]
    assert "does not bind root" not in run["limits_applied"]  # runs are nobody's here
    # The same job without the cap: all 50 start.
    lcli.ok("edit", "forks", "--max-procs", "none")
    assert json.loads(lcli.ok("show", "--json", "forks"))["limits"] is None
    free = lcli("trigger", "-f", "forks", timeout=60)
    assert free.returncode == 0 and "all 50" in free.stdout, free


def test_a_limit_above_the_node_is_held_to_it_and_said_so(lcli: Cli) -> None:
    done = lcli("run", "-f", "--memory", "8G", "--max-files", "100", "--shell", "--",
                "ulimit -v; ulimit -n")  # fmt: skip
    assert done.returncode == 0, done
    assert done.stdout.split() == [str((1 << 30) // 1024), "100"]
    applied = _status(lcli, _run_id(done.stderr))["limits_applied"]
    assert applied.endswith("memory 8G asked, held to the node's 1G"), applied


def test_flags_show_edit_and_apply_file(lcli: Cli, tmp_path: Path) -> None:
    lcli.ok("add", "capped", "--memory", "512M", "--max-procs", "64", "--cpu-time", "10m",
            "--cpu-weight", "50", "--", "true")  # fmt: skip
    job = json.loads(lcli.ok("show", "--json", "capped"))
    assert job["limits"] == {
        "memory_bytes": 512 << 20, "processes": 64, "cpu_seconds": 600, "cpu_weight": 50,
    }  # fmt: skip
    assert "memory 512M, processes 64, cpu time 600s, cpu weight 50" in lcli.ok("show", "capped")
    edited = json.loads(
        lcli.ok("edit", "capped", "--json", "--memory", "none", "--max-files", "256")
    )
    assert edited["limits"] == {
        "processes": 64, "open_files": 256, "cpu_seconds": 600, "cpu_weight": 50,
    }  # fmt: skip
    spec = tmp_path / "jobs.toml"
    spec.write_text(
        '[jobs.filed]\ncommand = ["true"]\nlimits = { memory = "256M", processes = 32 }\n'
    )
    lcli.ok("apply", "-f", str(spec))
    assert json.loads(lcli.ok("show", "--json", "filed"))["limits"] == {
        "memory_bytes": 256 << 20, "processes": 32,
    }  # fmt: skip
    spec.write_text('[jobs.filed]\ncommand = ["true"]\nlimits = { processes = 32 }\n')
    plan = json.loads(lcli.ok("apply", "-f", str(spec), "--json"))
    assert plan["changes"] == [{"action": "update", "name": "filed", "fields": ["limits"]}]
    assert lcli.ok("show", "--json", "filed").count("memory_bytes") == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--memory", "lots"), "--memory: expected a size"),
        (("--max-procs", "-3"), "--max-procs: expected a whole number >= 1"),
        (("--cpu-time", "soon"), "--cpu-time:"),
        (("--memory", "1K"), "limits.memory_bytes: must be absent or 16777216-"),
        (("--cpu-weight", "20000"), "limits.cpu_weight: must be absent or 1-10000"),
    ],
)
def test_bad_limits_are_one_line_errors(lcli: Cli, args: tuple[str, ...], message: str) -> None:
    done = lcli("add", "bad", *args, "--", "true")
    assert done.returncode == 2, done
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    ran = lcli("run", *args, "--", "true")
    assert ran.returncode == 2 and message in ran.stderr, ran
