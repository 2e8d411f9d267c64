"""Stored scripts across a cluster: two nodes on PostgreSQL sharing an S3 blob store (a
real moto server process); scripts added through node 1 run on node 2."""

from __future__ import annotations

import hashlib
import json
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from blobkit import PYTHON, clean_env, running_node, s3_flags
from s3kit import MotoServer

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

PY = b"""#!/usr/bin/env python3
import sys
print("python says", " ".join(sys.argv[1:]), sys.version_info[0])
"""
RB = b"""puts "ruby says #{ARGV.join(' ')} #{1 + 1}"
"""


def _last_run(cli: object, job: str) -> dict[str, object]:
    runs = json.loads(cli.ok("history", job, "--json"))  # type: ignore[attr-defined]
    return dict(runs[0])


def test_scripts_added_on_node_1_run_on_node_2(
    pg_database: Callable[[str | None], str], moto: MotoServer, tmp_path: Path
) -> None:
    url = pg_database(None)
    flags = s3_flags(moto, f"c-{uuid.uuid4().hex[:8]}")
    work = tmp_path / "work"
    work.mkdir()
    (work / "hello.py").write_bytes(PY)
    (work / "hello.rb").write_bytes(RB)
    home = tmp_path
    # Node 1 takes API calls and runs nothing; node 2 runs everything and never sees
    # the files (it fetches them from S3 by digest).
    with (
        running_node(
            tmp_path / "n1", db=url, home=home, extra=[*flags, "--capacity", "0", "--name", "n1"]
        ) as one,
        running_node(
            tmp_path / "n2", db=url, home=home, certs=one.certs, extra=[*flags, "--name", "n2"]
        ),
    ):
        one.ok("add", "py", "--script", str(work / "hello.py"), "--", "from", "py")
        one.ok("add", "rb", "--script", str(work / "hello.rb"), "--interpreter", "ruby")
        done = one("trigger", "-f", "py", timeout=90)
        assert (done.returncode, done.stdout) == (0, "python says from py 3\n"), done.stderr
        done = one("trigger", "-f", "rb", timeout=90)
        assert (done.returncode, done.stdout) == (0, "ruby says  2\n"), done.stderr

        for job, body, interpreter in (("py", PY, ["python3"]), ("rb", RB, ["ruby"])):
            run = _last_run(one, job)
            assert run["node_name"] == "n2"
            script = run["script"]
            assert isinstance(script, dict)
            assert script["digest"] == hashlib.sha256(body).hexdigest()
            assert script["interpreter"] == interpreter
            assert one.raw("show", job, "--script") == body
        cached = tmp_path / "n2" / "scripts" / hashlib.sha256(PY).hexdigest()
        assert cached.read_bytes() == PY
        assert not (tmp_path / "n1" / "scripts").exists()
        stored = [k for k in moto.object_keys() if "/scripts/sha256/" in k]
        assert len(stored) == 2

        # A new body is a new version; the old run keeps the digest it ran.
        first = _last_run(one, "py")["script"]
        (work / "hello.py").write_bytes(PY.replace(b"python says", b"python v2 says"))
        one.ok("edit", "py", "--script", str(work / "hello.py"))
        done = one("trigger", "-f", "py", timeout=90)
        assert done.stdout == "python v2 says from py 3\n", done.stderr
        runs = json.loads(one.ok("history", "py", "--json"))
        assert [r["script"]["digest"] for r in runs] == [
            hashlib.sha256((work / "hello.py").read_bytes()).hexdigest(),
            first["digest"],  # type: ignore[index]
        ]

        # Another user sees neither the job nor its script.
        subprocess.run(
            [PYTHON, "-m", "cronhive", "certs", "issue", "mallory", "--dir", str(one.certs)],
            check=True, capture_output=True, env=clean_env(home),
        )  # fmt: skip
        assert one("--as", "mallory", "show", "user:admin/py", "--script").returncode == 3
        assert one("--as", "mallory", "logs", runs[0]["id"]).returncode == 3
