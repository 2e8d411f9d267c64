"""Jobs, apply, import-crontab, nodes and completion from the terminal, against the
shared real node (subprocesses all the way)."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import tomllib
from pathlib import Path

from clikit import Cli, clean_env


def _job(cli: Cli, ref: str) -> dict[str, object]:
    value = json.loads(cli.ok("show", "--json", ref))
    assert isinstance(value, dict)
    return value


def test_add_show_edit_pause_resume_rm(cli: Cli) -> None:
    out = cli.ok(
        "add", "nightly", "--cron", "0 3 * * *", "--tz", "Europe/Berlin", "--timeout", "1h",
        "--retries", "2", "--retry-delay", "30s", "--concurrency", "forbid", "--tag", "linux",
        "--env", "A=1", "--cwd", "/tmp", "--description", "the backup", "--", "backup.sh", "-v",
    )  # fmt: skip
    assert "at 03:00 every day (Europe/Berlin)" in out
    job = _job(cli, "nightly")
    assert job["command"] == ["backup.sh", "-v"]
    assert job["schedule"] == {
        "kind": "cron",
        "expression": "0 3 * * *",
        "timezone": "Europe/Berlin",
        "dst_repeated": "auto",
        "dst_skipped": "auto",
        "description": "at 03:00 every day (Europe/Berlin)",
    }
    assert (job["timeout_seconds"], job["concurrency"], job["target_tags"]) == (
        3600.0,
        "forbid",
        ["linux"],
    )
    assert job["retry"] == {
        "max_retries": 2, "delay_seconds": 30.0, "backoff": 2.0, "max_delay_seconds": 3600.0,
    }  # fmt: skip
    assert (job["env"], job["cwd"], job["owner"]) == ({"A": "1"}, "/tmp", "user:admin")
    assert job["next_fire_at"] is not None

    cli.ok("edit", "nightly", "--every", "90s", "--retries", "5")
    edited = _job(cli, "nightly")
    assert edited["schedule"]["kind"] == "interval"  # type: ignore[index]
    assert edited["retry"]["max_retries"] == 5  # type: ignore[index]
    assert edited["retry"]["delay_seconds"] == 30.0  # type: ignore[index]  # kept
    assert edited["timeout_seconds"] == 3600.0  # untouched
    assert edited["command"] == ["backup.sh", "-v"]

    cli.ok("pause", "nightly")
    assert _job(cli, "nightly")["enabled"] is False
    assert "paused" in cli.ok("ls")
    cli.ok("resume", str(edited["id"]))  # by id
    assert _job(cli, "nightly")["enabled"] is True

    assert cli.ok("rm", "nightly").strip() == "deleted nightly"
    gone = cli("show", "nightly")
    assert gone.returncode == 3
    assert "no such job: nightly" in gone.stderr


def test_trigger_follow_history_and_ls_counts(cli: Cli) -> None:
    cli.ok("add", "greet", "--", "sh", "-c", "echo hello from greet; exit 4")
    done = cli("trigger", "-f", "greet")
    assert done.returncode == 4
    assert done.stdout == "hello from greet\n"
    run_id = cli.ok("trigger", "greet").strip()
    cli.ok("logs", "-f", run_id)
    history = json.loads(cli.ok("history", "greet", "--json", "-n", "5"))
    assert next(h["id"] for h in history) == run_id  # newest first
    assert {h["state"] for h in history} == {"failed"}
    assert {h["exit_code"] for h in history} == {4}
    assert len(history) == 2
    assert run_id in cli.ok("history", "greet")
    (listed,) = [j for j in json.loads(cli.ok("ls", "--json")) if j["name"] == "greet"]
    assert (listed["failure_count"], listed["last_state"]) == (2, "failed")
    table = cli.ok("ls")
    assert table.splitlines()[0].split() == [
        "NAME",
        "SCHEDULE",
        "NEXT",
        "RUN",
        "LAST",
        "OK",
        "FAILED",
    ]
    assert "only when triggered" in table
    assert "\x1b[" not in table  # no colour when not a terminal


def test_every_schedule_runs_and_group_jobs_are_addressed_with_their_owner(cli: Cli) -> None:
    cli.ok("add", "tick", "--every", "1s", "--group", "admins", "--", "true")
    job = _job(cli, "group:admins/tick")
    assert job["owner"] == "group:admins"
    assert cli("show", "tick").returncode == 3  # not the caller's own
    assert "admins/tick" in cli.ok("ls")
    history = cli.ok("history", "group:admins/tick", "--json")
    cli.ok("rm", "group:admins/tick")
    assert isinstance(json.loads(history), list)


def test_job_flag_errors_exit_2_naming_the_flag(cli: Cli) -> None:
    for args, flag in [
        (["--cron", "61 * * * *"], "schedule"),
        (["--every", "5x"], "--every"),
        (["--cron", "@daily", "--every", "5m"], "only one of"),
        (["--tz", "Mars/Olympus", "--cron", "@daily"], "Mars/Olympus"),
        (["--retry-delay", "never"], "--retry-delay"),
    ]:
        done = cli("add", "bad", *args, "--", "true")
        assert done.returncode == 2, (args, done.stderr)
        assert flag in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
    assert cli("show", "bad").returncode == 3  # nothing was created
    assert cli("edit", "nothing-here", "--retries", "1").returncode == 3


def test_a_user_sees_only_their_own_jobs(cli: Cli) -> None:
    subprocess.run(
        [*cli.argv()[:3], "certs", "issue", "alice", "--dir", str(cli.certs)],
        check=True, capture_output=True, env=clean_env(cli.home),
    )  # fmt: skip
    cli.ok("add", "private", "--", "true")
    as_alice = cli("--as", "alice", "show", "user:admin/private")
    assert as_alice.returncode == 3
    cli.ok("--as", "alice", "add", "mine", "--", "true")
    assert _job(cli, "user:alice/mine")["owner"] == "user:alice"  # admin sees everything
    names = [j["name"] for j in json.loads(cli.ok("--as", "alice", "ls", "--json"))]
    assert names == ["mine"]


APPLY = """
[jobs.backup]
command = ["/usr/local/bin/backup.sh", "--full"]
cron = "0 3 * * *"
tz = "Europe/Berlin"
timeout = "2h"

[jobs.report]
command = "echo report | tee /tmp/report"
every = "1h"
"""


def test_apply_creates_updates_prunes_and_dry_runs_change_nothing(cli: Cli, tmp_path: Path) -> None:
    cli.ok("add", "leftover", "--", "true")
    path = tmp_path / "jobs.toml"
    path.write_text(APPLY)
    dry = cli.ok("apply", "-f", str(path), "--dry-run", "--prune")
    assert "create backup" in dry
    assert "create report" in dry
    assert "delete leftover" in dry
    assert "nothing applied" in dry
    assert cli("show", "backup").returncode == 3
    assert cli.ok("apply", "-f", str(path)).splitlines()[-1].startswith("create 2, update 0")
    assert _job(cli, "report")["shell"] is True
    again = cli.ok("apply", "-f", str(path))
    assert again.strip() == "create 0, update 0, delete 0; 2 unchanged"
    path.write_text(APPLY.replace("0 3 * * *", "0 4 * * *").replace('timeout = "2h"\n', ""))
    changed = cli.ok("apply", "-f", str(path), "--prune")
    assert "update backup (schedule, timeout_seconds)" in changed
    assert "delete leftover" in changed
    backup = _job(cli, "backup")
    assert backup["schedule"]["expression"] == "0 4 * * *"  # type: ignore[index]
    assert backup["timeout_seconds"] is None
    assert cli("show", "leftover").returncode == 3
    path.write_text('[jobs.bad]\ncommand = ["x"]\ncron = "nope"\n')
    bad = cli("apply", "-f", str(path))
    assert bad.returncode == 2
    assert "jobs.bad" in bad.stderr


CRONTAB = r"""# nightly things
PATH=/usr/bin:/bin
MAILTO=ops@example.org
CRON_TZ=Europe/Berlin
# name: db-backup
30 2 * * 1-5 /usr/local/bin/pg_dump --all > /var/backups/db.sql
@hourly date +\%s >> /tmp/stamps
*/5 * * * * echo ping
*/10 * * * * echo ping
"""


def test_import_crontab_to_a_file_then_apply(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "crontab").write_text(CRONTAB)
    out_file = tmp_path / "imported.toml"
    refused = cli("import-crontab", str(tmp_path / "crontab"), "-o", str(out_file))
    assert refused.returncode == 2 and not out_file.exists()
    assert "crontab:3: MAILTO=ops@example.org has no notification target" in refused.stderr
    assert "--mailto ops@example.org=TARGET" in refused.stderr
    # This node mails no one: the entries come without the mail, which is reported.
    args = ("import-crontab", str(tmp_path / "crontab"), "-o", str(out_file))
    done = cli(*args, "--skip-unsupported")
    assert done.returncode == 0, done.stderr
    assert "import without this mail" in done.stderr
    doc = tomllib.loads(out_file.read_text())
    assert list(doc["jobs"]) == ["db-backup", "date-s-tmp-stamps", "echo-ping", "echo-ping-2"]
    assert doc["jobs"]["db-backup"] == {
        "command": "/usr/local/bin/pg_dump --all > /var/backups/db.sql",
        "cron": "30 2 * * 1-5",
        "tz": "Europe/Berlin",
        "env": {"PATH": "/usr/bin:/bin"},
    }
    assert doc["jobs"]["date-s-tmp-stamps"]["command"] == "date +%s >> /tmp/stamps"
    assert doc["jobs"]["date-s-tmp-stamps"]["cron"] == "@hourly"
    applied = cli.ok("apply", "-f", str(out_file))
    assert "create 4" in applied
    assert _job(cli, "echo-ping-2")["schedule"]["expression"] == "*/10 * * * *"  # type: ignore[index]
    direct = cli("import-crontab", "-", stdin="*/5 * * * * echo ping\n")  # same names: no-op
    assert direct.returncode == 0
    assert "create 0, update 1" in direct.stdout  # the tz differs (UTC default)


def test_import_crontab_refuses_reboot_and_bare_percent(cli: Cli) -> None:
    reboot = cli("import-crontab", "-", stdin="@reboot /usr/bin/startup\n")
    assert reboot.returncode == 2
    assert "-:1: @reboot" in reboot.stderr
    percent = cli("import-crontab", "-", stdin="# c\n0 * * * * date +%s\n")
    assert percent.returncode == 2
    assert "-:2: unescaped %" in percent.stderr


def test_nodes_and_completion(cli: Cli) -> None:
    (node,) = json.loads(cli.ok("nodes", "--json"))
    assert set(node) == {
        "id", "name", "tags", "capacity", "running", "alive", "state", "heartbeat_at",
        "started_at", "down_since", "down_reason",
    }  # fmt: skip
    assert (node["alive"], node["state"], node["down_since"]) == (True, "up", None)
    assert " up " in cli.ok("nodes")
    for shell, marker in [("bash", "complete -o"), ("zsh", "compdef"), ("fish", "complete")]:
        script = cli.ok("completion", shell)
        assert "_CRONHIVE_COMPLETE" in script
        assert marker in script


def test_connection_settings_from_env_and_client_config(cli: Cli, tmp_path: Path) -> None:
    plain = [*cli.argv()[:3], "nodes", "--json"]  # no --server/--certs
    env = clean_env(tmp_path, CRONHIVE_SERVER=cli.server, CRONHIVE_CERTS=str(cli.certs))
    by_env = subprocess.run(plain, capture_output=True, text=True, env=env, check=False)
    assert by_env.returncode == 0, by_env.stderr
    config = tmp_path / ".config" / "cronhive" / "client.toml"
    config.parent.mkdir(parents=True)
    config.write_text(f'server = "{cli.server}"\ncerts = "{cli.certs}"\ncert = "admin"\n')
    by_file = subprocess.run(plain, capture_output=True, text=True, env=clean_env(tmp_path))
    assert by_file.returncode == 0, by_file.stderr
    # A flag beats the file; with nothing given, the local default is tried.
    flag = subprocess.run(
        [*cli.argv()[:3], "--server", "127.0.0.1:1", "nodes"],
        capture_output=True, text=True, env=clean_env(tmp_path), check=False,
    )  # fmt: skip
    assert flag.returncode == 1
    assert "127.0.0.1:1" in flag.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text('colour = "always"\n')
    refused = subprocess.run(
        plain, capture_output=True, text=True, check=False,
        env=clean_env(tmp_path, CRONHIVE_CONFIG=str(bad)),
    )  # fmt: skip
    assert refused.returncode == 2
    assert "unknown key 'colour'" in refused.stderr


def _on_a_terminal(cli: Cli, *args: str, **env: str) -> str:
    """stdout of a command whose stdout is a real pseudo-terminal."""
    leader, follower = pty.openpty()
    try:
        proc = subprocess.Popen(
            cli.argv(*args), stdout=follower, stderr=subprocess.DEVNULL,
            env=clean_env(cli.home, **env),
        )  # fmt: skip
        os.close(follower)
        chunks = []
        while True:
            try:
                data = os.read(leader, 65536)
            except OSError:  # EIO: the other side is closed
                break
            if not data:
                break
            chunks.append(data)
        assert proc.wait(timeout=30) == 0
    finally:
        os.close(leader)
    return b"".join(chunks).decode()


def test_colour_only_on_a_terminal_and_never_with_no_color(cli: Cli) -> None:
    cli.ok("add", "colourful", "--", "true")
    cli.ok("trigger", "-f", "colourful")
    assert "\x1b[32msucceeded" in _on_a_terminal(cli, "show", "colourful")
    assert "\x1b[" not in _on_a_terminal(cli, "show", "colourful", NO_COLOR="1")
    assert "\x1b[" not in cli.ok("show", "colourful")


def test_intervals_spread_by_default_and_h_picks_from_the_name(cli: Cli) -> None:
    cli.ok("add", "spread-a", "--every", "1h", "--", "true")
    spread = _job(cli, "spread-a")["schedule"]
    assert spread["expression"] == "3600 offset H"  # type: ignore[index]
    assert spread["description"].startswith("every hour, offset ")  # type: ignore[index]
    cli.ok("add", "spread-b", "--every", "1h", "--offset", "0", "--", "true")
    assert _job(cli, "spread-b")["schedule"]["description"] == "every hour"  # type: ignore[index]
    cli.ok("add", "spread-c", "--cron", "H H * * *", "--", "true")
    shown = _job(cli, "spread-c")
    # The node and the CLI pick alike: `cron next --job` previews the job's own times.
    preview = json.loads(
        cli.ok("cron", "next", "--job", "spread-c", "H H * * *", "-n", "1", "--json")
    )
    assert shown["schedule"]["description"] == preview["description"]  # type: ignore[index]
    assert shown["next_fire_at"].startswith(preview["next"][0][:16])  # type: ignore[attr-defined]
    for args, words in [
        (["--every", "1h", "--offset", "2h"], "shorter than the interval"),
        (["--cron", "@daily", "--offset", "5m"], "goes with every"),
        (["--cron", "H(0-99) * * * *"], "within 0-59"),
    ]:
        done = cli("add", "spread-bad", *args, "--", "true")
        assert done.returncode == 2, (args, done.stderr)
        assert words in done.stderr
    for name in ("spread-a", "spread-b", "spread-c"):
        cli.ok("rm", name)
