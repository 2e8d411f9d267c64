"""The CLI against a node on PostgreSQL: the representative path (add, ls, trigger,
history, run -f, logs -f, apply) as real subprocesses."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from clikit import running_node

pytestmark = pytest.mark.postgres


def test_cli_on_a_postgresql_node(pg_database: Callable[[str | None], str], tmp_path: Path) -> None:
    url = pg_database(None)
    with running_node(tmp_path / "data", db=url) as cli:
        cli.ok("add", "pg-job", "--cron", "@daily", "--", "sh", "-c", "echo from pg; exit 5")
        listed = json.loads(cli.ok("ls", "--json"))
        assert [j["name"] for j in listed] == ["pg-job"]
        assert listed[0]["schedule"]["description"] == "at 00:00 every day (UTC)"
        triggered = cli("trigger", "-f", "pg-job")
        assert (triggered.returncode, triggered.stdout) == (5, "from pg\n")
        (run,) = json.loads(cli.ok("history", "pg-job", "--json"))
        assert (run["state"], run["exit_code"]) == ("failed", 5)
        assert cli.ok("logs", run["id"]) == "from pg\n"

        done = cli("run", "-f", "--", "sh", "-c", "echo hi; exit 3")
        assert (done.returncode, done.stdout) == (3, "hi\n")
        run_id = cli.ok("run", "--shell", "--", "for i in 1 2 3; do echo $i; sleep 0.2; done")
        assert cli.ok("logs", "-f", run_id.strip()) == "1\n2\n3\n"

        jobs = tmp_path / "jobs.toml"
        jobs.write_text('[jobs.tick]\ncommand = ["true"]\nevery = "1h"\n')
        applied = cli.ok("apply", "-f", str(jobs), "--prune")
        assert "create tick" in applied
        assert "delete pg-job" in applied
        assert cli("show", "pg-job").returncode == 3
