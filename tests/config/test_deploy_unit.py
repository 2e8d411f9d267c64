"""deploy/cronhive.service passes `systemd-analyze verify` (where systemd is installed)
with not one complaint about it, and starts the node the docs say it starts."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from cronhive.config import load_server_config

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
ANALYZE = shutil.which("systemd-analyze")


@pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze not installed here")
def test_the_unit_verifies_cleanly(tmp_path: Path) -> None:
    assert ANALYZE is not None
    text = (DEPLOY / "cronhive.service").read_text()
    assert "ExecStart=/usr/local/bin/cronhive server --config /etc/cronhive/node.toml" in text
    # verify checks that ExecStart's program exists: point it at this checkout's command.
    here = Path(sys.executable).with_name("cronhive")
    unit = tmp_path / "cronhive.service"
    unit.write_text(text.replace("/usr/local/bin/cronhive", str(here)))
    done = subprocess.run(
        [ANALYZE, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )
    # systemd-analyze exits 0 even for a misspelt setting: any line about our unit fails.
    about_ours = [line for line in (done.stdout + done.stderr).splitlines() if str(unit) in line]
    assert done.returncode == 0 and about_ours == [], done.stdout + done.stderr


def test_the_example_node_config_loads() -> None:
    path = DEPLOY / "node.toml"
    tomllib.loads(path.read_text())
    config = load_server_config(path)
    assert config.metrics == "127.0.0.1:9464"
    assert config.data_dir == Path("/var/lib/cronhive")
