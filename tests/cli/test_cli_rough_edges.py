"""The rough edges a new user hit, each pinned: clear one-line errors for the wrong port,
the wrong CA and a refused certificate; one-line usage errors; a node that says why it
stops. Real nodes and real TLS, as subprocesses."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

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
        (("status",), "cronhive: Missing argument 'ID'; see "),
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


def _wait_json(
    cli: Cli, args: tuple[str, ...], ok: Callable[[Any], bool], timeout: float = 20
) -> Any:
    """The JSON a command prints, once `ok` accepts it (bounded wait)."""
    deadline = time.monotonic() + timeout
    while True:
        value = json.loads(cli.ok(*args))
        if ok(value):
            return value
        assert time.monotonic() < deadline, value
        time.sleep(0.1)


def test_a_past_at_is_refused(cli: Cli) -> None:
    done = cli("add", "too-late", "--at", "2020-01-01T00:00", "--", "true")
    assert done.returncode == 2
    assert "is in the past; it would never fire" in done.stderr
    assert cli("show", "too-late").returncode == 3
    assert cli("add", "in-time", "--at", "2999-01-01T00:00", "--", "true").returncode == 0


def test_trigger_follow_goes_on_to_the_final_attempt(cli: Cli) -> None:
    script = 'echo "try $CRONHIVE_ATTEMPT"; exit 7'
    cli.ok("add", "always-fails", "--retries", "2", "--retry-delay", "1s", "--shell", "--", script)
    done = cli("trigger", "-f", "always-fails", timeout=60)
    assert (done.returncode, done.stdout) == (7, "try 1\ntry 2\ntry 3\n"), done.stderr
    assert "attempt 2 (run " in done.stderr and "attempt 3 (run " in done.stderr

    second = 'echo "try $CRONHIVE_ATTEMPT"; [ "$CRONHIVE_ATTEMPT" -ge 2 ]'
    cli.ok("add", "fails-once", "--retries", "3", "--retry-delay", "1s", "--shell", "--", second)
    done = cli("trigger", "-f", "fails-once", timeout=60)
    assert (done.returncode, done.stdout) == (0, "try 1\ntry 2\n"), done.stderr


def test_a_removed_jobs_history_stays_reachable(cli: Cli) -> None:
    cli.ok("add", "short-lived", "--", "sh", "-c", "echo bye")
    cli.ok("trigger", "-f", "short-lived")
    job_id = json.loads(cli.ok("show", "short-lived", "--json"))["id"]
    cli.ok("rm", "short-lived")
    done = cli("history", "short-lived", "--json")
    assert done.returncode == 0, done.stderr
    (run,) = json.loads(done.stdout)
    assert (run["job_name"], run["state"]) == ("short-lived", "succeeded")
    assert "was deleted" in done.stderr
    assert run["job_id"] in (None, job_id)
    assert cli("history", "never-existed").returncode == 3


def test_status_counts_bytes_while_a_run_writes(cli: Cli) -> None:
    run_id = cli.ok("run", "--", "sh", "-c", "printf 12345; printf ab >&2; sleep 30").strip()
    try:
        live = _wait_json(cli, ("status", "--json", run_id), lambda s: s["stdout_bytes"] == 5)
        assert live["state"] == "running"
        assert live["stderr_bytes"] == 2
        assert "5 B stdout, 2 B stderr" in cli.ok("status", run_id)
    finally:
        cli.ok("stop", run_id)


def test_unmatched_tags_are_warned_and_shown_on_the_queued_run(cli: Cli) -> None:
    added = cli("add", "needs-gpu", "--tag", "gpu", "--", "true")
    assert added.returncode == 0
    assert "warning: no live node carries the tags gpu" in added.stderr
    triggered = cli("trigger", "needs-gpu")
    assert "warning: no live node carries the tags gpu" in triggered.stderr
    run_id = triggered.stdout.strip()
    try:
        status = json.loads(cli.ok("status", "--json", run_id))
        assert status["state"] == "queued"
        assert status["target_tags"] == ["gpu"]
        assert status["waiting"].startswith("no live node carries the tags gpu")
        assert re.search(r"waiting: +no live node carries", cli.ok("status", run_id))
        listed = {r["id"]: r for r in json.loads(cli.ok("runs", "--state", "queued", "--json"))}
        assert listed[run_id]["waiting"] == status["waiting"]
        adhoc = cli("run", "--tag", "gpu", "--", "true")
        assert "warning: no live node carries the tags gpu" in adhoc.stderr
        cli.ok("stop", adhoc.stdout.strip())
    finally:
        cli.ok("stop", run_id)
    untagged = cli("add", "needs-nothing", "--", "true")
    assert "warning" not in untagged.stderr


def test_json_on_add_edit_and_apply(cli: Cli, tmp_path: Path) -> None:
    added = json.loads(cli.ok("add", "json-job", "--every", "1h", "--json", "--", "true"))
    assert (added["name"], added["schedule"]["kind"]) == ("json-job", "interval")
    assert added["schedule"]["expression"].startswith("3600")
    edited = json.loads(cli.ok("edit", "json-job", "--every", "2h", "--json"))
    assert edited["schedule"]["expression"].startswith("7200")
    assert edited["id"] == added["id"]
    jobs = tmp_path / "jobs.toml"
    jobs.write_text('[jobs.json-applied]\ncommand = ["true"]\nevery = "1h"\n')
    plan = json.loads(cli.ok("apply", "-f", str(jobs), "--json"))
    assert plan["changes"] == [{"action": "create", "name": "json-applied", "fields": []}]
    assert (plan["created"], plan["dry_run"]) == (1, False)
    again = json.loads(cli.ok("apply", "-f", str(jobs), "--json", "--dry-run"))
    assert (again["changes"], again["unchanged"], again["dry_run"]) == ([], 1, True)


def test_commands_are_shown_quoted_and_times_with_their_zone(cli: Cli) -> None:
    cli.ok("add", "quoted", "--every", "1h", "--", "echo", "a b", "c'd", "plain")
    shown = cli.ok("show", "quoted")
    assert "command:     echo 'a b' 'c'\"'\"'d' plain" in shown
    cli.ok("add", "quoted-shell", "--shell", "--", "echo 'x y' | tr x z")
    assert "/bin/sh -c 'echo '\"'\"'x y'\"'\"' | tr x z'" in cli.ok("show", "quoted-shell")
    # The nodes run with TZ unset: local time is UTC and says so.
    row = next(line for line in cli.ok("ls").splitlines() if line.startswith("quoted "))
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", row), row


def test_a_lost_runs_status_names_its_node_and_its_output(tmp_path: Path) -> None:
    data = tmp_path / "data"
    grace = ["--drain-grace", "0.5", "--name", "lost-node"]
    with running_node(data, extra=grace) as cli:
        run_id = cli.ok("run", "--", "sh", "-c", "printf 12345; sleep 60").strip()
        _wait_json(cli, ("status", "--json", run_id), lambda s: s["stdout_bytes"] == 5)
    # The node handed the run over at SIGTERM: lost, its end never recorded by it.
    with running_node(data, extra=grace) as cli:
        status = json.loads(cli.ok("status", "--json", run_id))
        assert status["state"] == "lost"
        assert status["node_name"] == "lost-node"
        assert status["stdout_bytes"] == 5
        assert "node:     lost-node" in cli.ok("status", run_id)
        for retry in json.loads(
            cli.ok("runs", "--state", "running", "--state", "queued", "--json")
        ):
            cli.ok("stop", retry["id"])


def test_flags_for_retry_backoff_and_output_cap(cli: Cli) -> None:
    added = json.loads(
        cli.ok(
            "add", "tuned", "--retries", "1", "--retry-backoff", "3", "--retry-max-delay", "5m",
            "--output-cap", "1K", "--json", "--", "sh", "-c", "head -c 5000 /dev/zero",
        )
    )  # fmt: skip
    assert added["retry"]["backoff"] == 3 and added["retry"]["max_delay_seconds"] == 300
    assert added["output_cap_bytes"] == 1024
    run_id = cli.ok("trigger", "tuned").strip()
    cli.ok("logs", "-f", run_id)
    status = json.loads(cli.ok("status", "--json", run_id))
    assert status["output_capped"] is True
    assert len(cli.ok("logs", run_id)) == 1024  # kept; stdout_bytes counts what it wrote
    edited = json.loads(cli.ok("edit", "tuned", "--output-cap", "2M", "--json"))
    assert edited["output_cap_bytes"] == 2 * 1024 * 1024
    bad = cli("add", "bad-cap", "--output-cap", "lots", "--", "true")
    assert bad.returncode == 2 and "--output-cap: expected a size" in bad.stderr
    adhoc = cli("run", "-f", "--output-cap", "10", "--", "sh", "-c", "echo 0123456789abcdef")
    assert adhoc.stdout == "0123456789"
