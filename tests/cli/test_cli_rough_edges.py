"""The rough edges a new user hit, each pinned: clear one-line errors for the wrong port,
the wrong CA and a refused certificate; one-line usage errors; a node that says why it
stops. Real nodes and real TLS, as subprocesses."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

from clikit import PYTHON, Cli, clean_env, free_port, running_node


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-m", "cronhive", *args],
        capture_output=True,
        text=True,
        env=clean_env(home),
        cwd=home,
        timeout=30,
        check=False,
    )


def test_usage_errors_are_one_line(cli: Cli) -> None:
    for args, said in [
        (("ls", "--bogus"), "cronhive: No such option '--bogus'; see "),
        (("run",), "cronhive: Missing argument 'COMMAND...'; see "),
        (("runs", "--state", "nope"), "cronhive: Invalid value for '--state'"),
        (("nosuch",), "cronhive: No such command 'nosuch'"),
    ]:
        done = cli(*args)
        assert done.returncode == 2, (args, done.stderr)
        assert done.stderr.count("\n") == 1, done.stderr
        assert done.stderr.startswith(said), done.stderr
        assert done.stderr.rstrip().endswith("--help"), done.stderr


def test_wrong_port_wrong_ca_and_refused_certificate(tmp_path: Path) -> None:
    data = tmp_path / "data"
    web = free_port()
    with running_node(data, extra=["--web", f"127.0.0.1:{web}"]) as cli:
        certs = str(cli.certs)
        at_web = _cli(tmp_path, "--server", f"127.0.0.1:{web}", "--certs", certs, "ls")
        assert at_web.returncode == 1
        assert "it answers HTTP 404, not gRPC: is that the web UI's port?" in at_web.stderr
        assert at_web.stderr.count("\n") == 1

        other = tmp_path / "other"
        _cli(
            tmp_path, "certs", "init", "--dir", str(other / "certs"), "--ca-dir", str(other / "ca")
        )
        wrong_ca = _cli(tmp_path, "--server", cli.server, "--certs", str(other / "certs"), "ls")
        assert wrong_ca.returncode == 1
        assert "the server's certificate is not signed by" in wrong_ca.stderr
        assert "CERTIFICATE_VERIFY_FAILED" not in wrong_ca.stderr

        mixed = tmp_path / "mixed"  # our CA, a client certificate of another CA
        mixed.mkdir()
        (mixed / "ca.crt").write_bytes((cli.certs / "ca.crt").read_bytes())
        for name in ("admin.crt", "admin.key"):
            (mixed / name).write_bytes((other / "certs" / name).read_bytes())
        refused = _cli(tmp_path, "--server", cli.server, "--certs", str(mixed), "ls")
        assert refused.returncode == 1
        assert "refused the client certificate" in refused.stderr

        nothing = _cli(tmp_path, "--server", f"127.0.0.1:{free_port()}", "--certs", certs, "ls")
        assert "nothing listens there (connection refused)" in nothing.stderr
        log = next(data.parent.glob("node-*.log"))
        time.sleep(0.5)  # let the node write what the web-port call made it write
        assert "Traceback" not in log.read_text(), log.read_text()[-3000:]


def test_shutdown_is_logged(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "node.log"
    argv = [
        PYTHON, "-m", "cronhive", "server", "--data-dir", str(tmp_path / "data"),
        "--listen", f"127.0.0.1:{port}", "--web", "off", "--log-level", "info",
    ]  # fmt: skip
    with log.open("w") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=clean_env(tmp_path))
        try:
            waited = _cli(
                tmp_path, "--server", f"127.0.0.1:{port}", "--certs",
                str(tmp_path / "data" / "certs"), "nodes", "--wait", "30",
            )  # fmt: skip
            assert waited.returncode == 0, waited.stderr
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    text = log.read_text()
    assert "SIGTERM received: shutting down" in text
    assert text.index("SIGTERM received") < text.index("left the cluster")
