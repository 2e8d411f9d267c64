"""Stored scripts through the CLI on one node (SQLite, local blob directory): apply's
`script = "path"`, the interpreter rules, the size limit."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from blobkit import running_node

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

JOBS = """
[jobs.hello]
script = "bin/hello.sh"
command = ["world"]
every = "1h"

[jobs.ruby]
script = "bin/hi.rb"
interpreter = "ruby"
"""


def test_apply_add_and_the_interpreter_rules(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "hello.sh").write_text('#!/bin/bash -e\necho "hello $1 from $0"\n')
    (bin_dir / "hi.rb").write_text("puts 'hi from ruby'\n")
    jobs = tmp_path / "jobs.toml"
    jobs.write_text(JOBS)
    with running_node(tmp_path / "data") as cli:
        out = cli.ok("apply", "-f", str(jobs))
        assert "create hello" in out and "create ruby" in out
        assert "0 unchanged" in out
        assert "2 unchanged" in cli.ok("apply", "-f", str(jobs))  # same bodies: nothing to do
        done = cli("trigger", "-f", "hello", timeout=90)
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("hello world from ")  # $0: the cached file
        assert cli("trigger", "-f", "ruby", timeout=90).stdout == "hi from ruby\n"
        shown = json.loads(cli.ok("show", "hello", "--json"))["script"]
        body = (bin_dir / "hello.sh").read_bytes()
        assert shown == {
            "digest": hashlib.sha256(body).hexdigest(),
            "interpreter": ["bash", "-e"],  # from the #! line, by program name
            "name": "hello.sh",
            "size": len(body),
        }

        (bin_dir / "hello.sh").write_text('#!/bin/sh\necho "v2 $1"\n')
        assert "update hello (script)" in cli.ok("apply", "-f", str(jobs))
        assert cli("trigger", "-f", "hello", timeout=90).stdout == "v2 world\n"
        assert cli.raw("show", "hello", "--script") == (bin_dir / "hello.sh").read_bytes()

        # No #! line and no --interpreter, a body over the limit, a missing file: exit 2,
        # nothing stored.
        (tmp_path / "plain.py").write_text("print('no shebang')\n")
        (tmp_path / "big.sh").write_bytes(b"#!/bin/sh\n" + b"#" * (1 << 20))
        for path in ("plain.py", "big.sh", "missing.sh"):
            done = cli("add", "bad", "--script", str(tmp_path / path))
            assert done.returncode == 2, (path, done.stderr)
            assert "--script" in done.stderr or "--interpreter" in done.stderr
        assert cli("show", "bad").returncode == 3
        cli.ok("add", "ok", "--script", str(tmp_path / "plain.py"), "--interpreter", "python3 -u")
        assert cli("trigger", "-f", "ok", timeout=90).stdout == "no shebang\n"
        cli.ok("edit", "ok", "--interpreter", "python3")
        assert json.loads(cli.ok("show", "ok", "--json"))["script"]["interpreter"] == ["python3"]
