"""A tenant's run attacks its node (a default `cronhive server`, as root in CI): every
attempt to read the node's keys, database, WAL, another run's spool or the node process's
/proc entries, or to signal the node, fails, with and without a granted run_as."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from securitykit import Node, host_dir, running_node, wait_for_file

# Each line: what, then a command that succeeds only if the run reached it.
ATTACKS = {
    "ca-key": 'cat "$CA/ca.key"',
    "ca-dir": 'ls -A "$CA" | grep -q .',  # an empty folder is what the sandbox shows
    "node-key": 'cat "$DATA/certs/server.key"',
    "admin-key": 'cat "$DATA/certs/admin.key"',
    "database": 'cat "$DATA/cronhive.db"',
    "wal": 'cat "$DATA/cronhive.db-wal"',
    "shm": 'cat "$DATA/cronhive.db-shm"',
    "other-spool": 'cat "$DATA/spool/$OTHER.stdout"',
    "spool-dir": 'ls -A "$DATA/spool" | grep -q .',
    "data-dir": 'ls -A "$DATA" | grep -q .',
    "node-environ": "cat /proc/$NODE/environ",
    "node-cmdline": "cat /proc/$NODE/cmdline",
    "node-fds": "ls /proc/$NODE/fd",
    "kill-node": "kill -KILL $NODE",
    "term-node": "kill -TERM $NODE",
    "host-tmp": 'cat "$HOST_TMP/visible"',
    "other-run-proc": "cat /proc/$VICTIM/environ",
    "kill-other-run": "kill -KILL $VICTIM",
}
SCRIPT = "".join(
    f"if {cmd} >/dev/null 2>&1; then echo 'LEAK {what}'; else echo 'denied {what}'; fi\n"
    for what, cmd in ATTACKS.items()
)


@pytest.fixture(scope="module")
def host_tmp() -> Iterator[Path]:
    """A folder in the host's /tmp with a file anybody may read."""
    with tempfile.TemporaryDirectory() as d:
        os.chmod(d, 0o755)
        (Path(d) / "visible").write_text("host tmp\n")
        os.chmod(Path(d) / "visible", 0o644)
        yield Path(d)


def _env(node: Node, victim: str, host_tmp: Path) -> list[str]:
    values = {
        "DATA": str(node.data_dir),
        "CA": str(node.data_dir.with_name(f"{node.data_dir.name}-ca")),
        "NODE": str(node.proc.pid),
        "OTHER": victim,
        "VICTIM": str(_host_pid(victim)),
        "HOST_TMP": str(host_tmp),
    }
    return [arg for k, v in values.items() for arg in ("--env", f"{k}={v}")]


def _host_pid(run_id: str) -> int:
    """The host PID of a run's command (it carries CRONHIVE_RUN_ID), 0 if none."""
    for p in psutil.process_iter(["environ", "name"]):
        try:
            if (p.info["environ"] or {}).get("CRONHIVE_RUN_ID") == run_id:
                return int(p.pid)
        except psutil.Error:
            continue
    return 0


def _victim(node: Node) -> str:
    """Another run that printed a secret and is still running (its spool file exists)."""
    run_id = node.ok("run", "--", "sh", "-c", "echo victim-secret; sleep 60").strip()
    wait_for_file(node.data_dir / "spool" / f"{run_id}.stdout")
    assert _host_pid(run_id) > 0
    return run_id


def _check(node: Node, out: str) -> None:
    lines = out.splitlines()
    assert [x for x in lines if x.startswith("LEAK")] == [], out
    assert sorted(lines) == sorted(f"denied {what}" for what in ATTACKS), out
    assert node.proc.poll() is None, "the node died"
    assert os.stat(f"/proc/{node.proc.pid}").st_uid == 0 or os.geteuid() != 0
    node.ok("nodes")  # and still answers


def test_a_run_without_run_as_reaches_nothing_of_the_node(node: Node, host_tmp: Path) -> None:
    victim = _victim(node)
    try:
        done = node.cli("run", "-f", *_env(node, victim, host_tmp), "--shell", "--", SCRIPT)
        assert done.returncode == 0, (done.stdout, done.stderr)
        _check(node, done.stdout)
    finally:
        node.ok("stop", victim)


def test_a_run_with_a_granted_run_as_reaches_nothing_of_the_node(
    node: Node, host_tmp: Path
) -> None:
    victim = _victim(node)
    try:
        env = _env(node, victim, host_tmp)
        node.ok("add", "attack", "--run-as", "daemon", *env, "--shell", "--", SCRIPT)
        done = node.cli("trigger", "-f", "attack")
        assert done.returncode == 0, (done.stdout, done.stderr)
        _check(node, done.stdout)
    finally:
        node.ok("stop", victim)


def test_runs_see_their_own_pid_namespace_tmp_and_uid(node: Node) -> None:
    script = "echo $$; ls /proc | grep -c '^[0-9]'; id -un; touch /tmp/x && ls /tmp"
    out = node.ok("run", "-f", "--shell", "--", script).split()
    pid, visible, user, tmp = out
    assert int(pid) < 10 and int(visible) < 10  # a handful: its own sandbox's processes
    assert user == ("nobody" if os.geteuid() == 0 else psutil.Process().username())
    assert tmp == "x"  # private and writable, and empty before
    node.ok("add", "whoami", "--run-as", "daemon", "--", "id", "-un")
    assert node.ok("trigger", "-f", "whoami").strip() == "daemon"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs a root node to grant run_as root")
def test_the_data_dir_is_hidden_even_from_a_run_as_root(node: Node, host_tmp: Path) -> None:
    # root could undo the sandbox's mounts (docs/security.md says so); what it is shown
    # is an empty data dir and CA dir, a fresh /tmp, and its own PID namespace.
    script = (
        'for d in "$DATA" "$CA" /tmp; do echo "$d holds $(ls -A "$d" | wc -l)"; done;'
        ' cat "$DATA/cronhive.db" "$HOST_TMP/visible" 2>&1; kill -0 $NODE 2>&1; true'
    )
    env = _env(node, "none", host_tmp)
    node.ok("add", "as-root", "--run-as", "root", *env, "--shell", "--", script)
    out = node.ok("trigger", "-f", "as-root")
    ca = node.data_dir.with_name(f"{node.data_dir.name}-ca")
    for d in (node.data_dir, ca, "/tmp"):
        assert f"{d} holds 0\n" in out, out
    assert "cronhive.db: No such file" in out and "visible: No such file" in out, out
    assert "No such process" in out, out


@pytest.mark.skipif(os.geteuid() != 0, reason="shows what a root node's unisolated run reaches")
def test_isolation_none_runs_as_the_node_and_reaches_its_files(host_tmp: Path) -> None:
    with host_dir() as home, running_node(home / "data", ["--isolation", "none"]) as n:
        script = 'cat "$CA/ca.key" >/dev/null && cat /proc/$NODE/environ >/dev/null && id -u'
        out = n.ok("run", "-f", *_env(n, "none", host_tmp), "--shell", "--", script)
        assert out.strip() == "0"  # root, like the node: isolation = "none" is no barrier
        assert "isolation" in n.log() and "not isolated" in n.log()


def test_a_node_that_cannot_isolate_says_so_and_refuses_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import shutil

    from cronhive.auth import CertPaths
    from cronhive.config import load_server_config
    from cronhive.node import sandbox_for

    monkeypatch.setattr(shutil, "which", lambda name, path=None: None)  # no bwrap here
    config = load_server_config(None, data_dir=tmp_path)
    sandbox = sandbox_for(config, CertPaths(dir=tmp_path / "certs"))
    assert sandbox is not None and sandbox.unavailable is not None
    assert "refuses every run" in caplog.text and 'isolation = "none"' in caplog.text
    none = load_server_config(None, data_dir=tmp_path, isolation="none")
    assert sandbox_for(none, CertPaths(dir=tmp_path / "certs")) is None  # opted out


def test_a_run_dies_with_its_node(tmp_path: Path) -> None:
    with host_dir() as home, running_node(home / "data") as n:
        run_id = n.ok("run", "--", "sleep", "300").strip()
        deadline = time.monotonic() + 20
        while not (pid := _host_pid(run_id)):
            assert time.monotonic() < deadline, "the run never started"
            time.sleep(0.05)
        sleeper = psutil.Process(pid)
        n.proc.kill()  # no shutdown, no stop: the sandbox goes with its parent
        n.proc.wait()
        sleeper.wait(timeout=20)
        assert not sleeper.is_running()
