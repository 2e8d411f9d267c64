"""A certificate per node (`cronhive certs server`): a node started with only its own
folder (ca.crt, server.crt, server.key) serves clients of the cluster's CA."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

from clikit import PYTHON, Cli, clean_env, free_port


def _run(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-m", "cronhive", *args],
        capture_output=True, text=True, env=clean_env(home), cwd=home, timeout=60, check=False,
    )  # fmt: skip


def test_a_node_with_its_own_server_certificate(tmp_path: Path) -> None:
    certs, ca = tmp_path / "certs", tmp_path / "ca"
    assert _run(tmp_path, "certs", "init", "--dir", str(certs), "--ca-dir", str(ca)).returncode == 0
    node_certs = tmp_path / "node3"
    made = _run(
        tmp_path, "certs", "server", str(node_certs), "--dir", str(certs), "--ca-dir", str(ca),
        "--name", "node3.internal", "--ip", "127.0.0.1",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert sorted(p.name for p in node_certs.iterdir()) == ["ca.crt", "server.crt", "server.key"]
    assert (node_certs / "server.key").stat().st_mode & 0o077 == 0
    again = _run(
        tmp_path, "certs", "server", str(node_certs), "--dir", str(certs), "--ca-dir", str(ca),
        "--ip", "::1",
    )  # fmt: skip
    assert again.returncode == 2 and "already exists" in again.stderr

    port = free_port()
    argv = [
        PYTHON, "-m", "cronhive", "server", "--data-dir", str(tmp_path / "data"),
        "--certs", str(node_certs), "--listen", f"127.0.0.1:{port}", "--web", "off",
    ]  # fmt: skip
    with (tmp_path / "node.log").open("w") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=clean_env(tmp_path))
        try:
            cli = Cli(server=f"127.0.0.1:{port}", certs=certs, home=tmp_path)
            cli.ok("nodes", "--wait", "30")
            assert cli.ok("run", "-f", "--", "echo", "hi") == "hi\n"
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
    assert not (node_certs / "ca.key").exists()
