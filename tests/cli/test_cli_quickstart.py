"""The README's Quickstart, run as written: the ```sh block under "## Quickstart" goes to
bash (-e: any failing line fails; -x traces) in a fresh directory whose .venv is this test's venv.

Only the ports differ from a reader's machine (CRONHIVE_LISTEN/WEB/SERVER), so the test
never collides with a node already on 7433; the text of the block is untouched.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from clikit import clean_env, free_port

README = Path(__file__).resolve().parents[2] / "README.md"
_BLOCK = re.compile(r"^## Quickstart\n.*?^```sh\n(.*?)^```", re.S | re.M)


def quickstart() -> str:
    found = _BLOCK.search(README.read_text())
    assert found, "README.md has no ```sh block under ## Quickstart"
    return found.group(1)


def test_the_quickstart_is_short() -> None:
    lines = [line for line in quickstart().splitlines() if line.strip()]
    assert 0 < len(lines) < 20


def test_the_readme_quickstart_runs_as_written(tmp_path: Path) -> None:
    (tmp_path / ".venv").symlink_to(Path(sys.prefix))
    script = tmp_path / "quickstart.sh"
    script.write_text(quickstart())
    port = free_port()
    env = clean_env(
        tmp_path,
        CRONHIVE_LISTEN=f"127.0.0.1:{port}",
        CRONHIVE_WEB=f"127.0.0.1:{free_port()}",
        CRONHIVE_SERVER=f"127.0.0.1:{port}",
    )
    proc = subprocess.Popen(
        ["bash", "-ex", str(script)],  # -x: the failing line shows in stderr
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its background node is in our reach if it hangs
    )
    try:
        out, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    node_log = (tmp_path / "node.log").read_text() if (tmp_path / "node.log").exists() else ""
    assert proc.returncode == 0, f"{out}\n{err}\n{node_log}"
    assert "hello from cronhive\n" in out
    assert "tick 1\ntick 2\ntick 3\n" in out
    ls_line = next(line for line in out.splitlines() if line.startswith("heartbeat "))
    assert "every fifth minute" in ls_line
    assert "succeeded" in ls_line
    assert out.count("succeeded") >= 2  # ls and history
    assert (tmp_path / ".cronhive" / "certs" / "admin.crt").exists()
