"""The backup recipes of docs/cluster.md, run as written: SQLite's online backup of a live
node's database, and pg_dump/pg_restore; a node started on the copy has the jobs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from clikit import running_node

# docs/cluster.md, "Backing up": the online backup API, safe while the node writes (WAL).
SQLITE_BACKUP = (
    "import sqlite3, sys; src = sqlite3.connect(f'file:{sys.argv[1]}?mode=ro', uri=True); "
    "dst = sqlite3.connect(sys.argv[2]); src.backup(dst); dst.close()"
)


def test_sqlite_online_backup_of_a_live_node(tmp_path: Path) -> None:
    (tmp_path / "live").mkdir()
    with running_node(tmp_path / "live" / "data") as cli:
        cli.ok("add", "nightly", "--cron", "0 3 * * *", "--", "true")
        cli.ok("run", "-f", "--", "true")
        copy = tmp_path / "restored" / "data"
        copy.mkdir(parents=True)
        subprocess.run(
            [sys.executable, "-c", SQLITE_BACKUP, str(tmp_path / "live/data/cronhive.db"),
             str(copy / "cronhive.db")],
            check=True, timeout=60,
        )  # fmt: skip
    with running_node(copy) as restored:
        (job,) = json.loads(restored.ok("ls", "--json"))
        assert job["name"] == "nightly"
        assert len(json.loads(restored.ok("runs", "--json"))) == 1


@pytest.mark.postgres
@pytest.mark.skipif(shutil.which("pg_dump") is None, reason="pg_dump not installed")
def test_pg_dump_and_restore(pg_database: Callable[[str | None], str], tmp_path: Path) -> None:
    source = pg_database(None)
    for side in ("a", "b"):
        (tmp_path / side).mkdir()
    with running_node(tmp_path / "a" / "data", db=source) as cli:
        cli.ok("add", "nightly", "--cron", "0 3 * * *", "--", "true")
        dump = tmp_path / "cronhive.dump"
        subprocess.run(["pg_dump", "-Fc", "-f", str(dump), source], check=True, timeout=120)
    target = pg_database(None)
    subprocess.run(["pg_restore", "--no-owner", "-d", target, str(dump)], check=True, timeout=120)
    with running_node(tmp_path / "b" / "data", db=target) as restored:
        (job,) = json.loads(restored.ok("ls", "--json"))
        assert job["name"] == "nightly"
    assert urlsplit(source).path != urlsplit(target).path
