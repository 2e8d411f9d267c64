"""Ad-hoc runs from the terminal, against the shared real node, as subprocesses."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

from clikit import Cli, clean_env


def test_run_follow_exits_with_the_commands_code_and_splits_streams(cli: Cli) -> None:
    done = cli("run", "-f", "--", "sh", "-c", "echo hi; echo oops >&2; exit 3")
    assert done.returncode == 3
    assert done.stdout == "hi\n"
    assert "oops\n" in done.stderr


def test_run_prints_the_id_and_status_and_logs_read_it(cli: Cli) -> None:
    run_id = cli.ok("run", "--env", "WHO=world", "--", "sh", "-c", 'echo "hello $WHO"').strip()
    assert len(run_id) == 36
    cli.ok("logs", "-f", run_id)  # waits for the end
    status = json.loads(cli.ok("status", "--json", run_id))
    assert status["id"] == run_id
    assert status["state"] == "succeeded"
    assert status["exit_code"] == 0
    assert status["job_id"] is None
    assert status["stdout_bytes"] == len("hello world\n")
    assert cli.ok("logs", run_id) == "hello world\n"
    assert cli.ok("output", "--stdout", run_id) == "hello world\n"  # the alias
    only_err = cli("logs", "--stderr", run_id)
    assert (only_err.returncode, only_err.stdout) == (0, "")
    assert "succeeded" in cli.ok("status", run_id)


def test_logs_follow_gets_every_line_of_a_run_still_writing(cli: Cli) -> None:
    script = "for i in 1 2 3; do echo $i; sleep 0.3; done"
    run_id = cli.ok("run", "--shell", "--", script).strip()
    done = cli("logs", "-f", run_id)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "1\n2\n3\n"


def test_exit_codes_of_signals_failures_to_start_and_timeouts(cli: Cli) -> None:
    killed = cli("run", "-f", "--", "sh", "-c", "kill -9 $$")
    assert killed.returncode == 128 + signal.SIGKILL
    missing = cli("run", "-f", "--", "/no/such/program")
    assert missing.returncode == 1
    assert "/no/such/program" in missing.stderr
    slow = cli("run", "-f", "--timeout", "1", "--", "sleep", "30")
    assert slow.returncode == 1
    assert "timed_out" in slow.stderr


def test_stop_a_running_run(cli: Cli) -> None:
    run_id = cli.ok("run", "--", "sleep", "30").strip()
    stopped = json.loads(cli.ok("stop", "--json", run_id))
    assert stopped["id"] == run_id
    cli.ok("logs", "-f", run_id)  # returns once the run has ended
    assert json.loads(cli.ok("status", "--json", run_id))["state"] == "stopped"


def test_ctrl_c_while_following_detaches_with_130_and_no_traceback(cli: Cli) -> None:
    run_id = cli.ok("run", "--shell", "--", "echo started; sleep 30").strip()
    proc = subprocess.Popen(
        cli.argv("logs", "-f", run_id),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(cli.home),
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == "started\n"  # following for sure
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=15)
    assert proc.returncode == 130
    assert "Traceback" not in err
    # Detached, not stopped: the run goes on until we stop it.
    assert json.loads(cli.ok("status", "--json", run_id))["state"] == "running"
    cli.ok("stop", run_id)


def test_bad_input_exits_2_and_unknown_ids_exit_3(cli: Cli) -> None:
    bad_env = cli("run", "--env", "NOVALUE", "--", "true")
    assert bad_env.returncode == 2
    assert "--env" in bad_env.stderr
    bad_timeout = cli("run", "--timeout", "soon", "--", "true")
    assert bad_timeout.returncode == 2
    assert "--timeout" in bad_timeout.stderr
    server_refused = cli("run", "--cwd", "relative/dir", "--", "true")  # INVALID_ARGUMENT
    assert server_refused.returncode == 2
    assert "cwd" in server_refused.stderr
    unknown = cli("status", "00000000-0000-4000-8000-000000000000")
    assert unknown.returncode == 3
    assert "no such execution" in unknown.stderr
    not_an_id = cli("logs", "nope")
    assert not_an_id.returncode == 2


def test_connection_failures_name_the_server_and_certificate(cli: Cli, tmp_path: Path) -> None:
    dead = Cli(server="127.0.0.1:1", certs=cli.certs, home=cli.home)("nodes")
    assert dead.returncode == 1
    assert "127.0.0.1:1" in dead.stderr
    assert str(cli.certs) in dead.stderr
    assert len(dead.stderr.strip().splitlines()) == 1
    no_certs = Cli(server=cli.server, certs=tmp_path / "none", home=cli.home)("nodes")
    assert no_certs.returncode == 1
    assert str(tmp_path / "none") in no_certs.stderr
    bad_address = Cli(server="not an address", certs=cli.certs, home=cli.home)("nodes")
    assert bad_address.returncode == 2


def test_waiting_for_a_server_that_never_comes_gives_up(cli: Cli) -> None:
    start = time.monotonic()
    done = Cli(server="127.0.0.1:1", certs=cli.certs, home=cli.home)("nodes", "--wait", "0.5")
    assert done.returncode == 1
    assert "not ready after 0.5s" in done.stderr
    assert time.monotonic() - start < 20
