"""import-crontab on the crontabs Debian's own packages ship (tests/cli/data/debian-crontabs):
the user column becomes run_as, checked against the policy; SHELL honoured; @reboot
reported and skipped on request; a system file read as a user crontab refused clearly."""

from __future__ import annotations

import json
import shutil
import tomllib
from pathlib import Path

from clikit import Cli, running_node

DEBIAN = Path(__file__).parent / "data" / "debian-crontabs"
FILES = [
    "crontab", "anacron", "certbot", "e2scrub_all", "mdadm", "ntpsec", "php",
    "popularity-contest", "sysstat",
]  # fmt: skip
PATH = "/usr/local/sbin:/usr/local/bin:/sbin:/bin:/usr/sbin:/usr/bin"
SA_PATH = "/usr/lib/sysstat:/usr/sbin:/usr/sbin:/usr/bin:/sbin:/bin"
_PARTS = "cd / && run-parts --report /etc/cron.{}"
_ANACRON = "test -x /usr/sbin/anacron || {{ " + _PARTS + "; }}"
# name -> (schedule, command, PATH); every entry runs as root.
EXPECTED = {
    "cd-run-parts-report-etc-cron.hourly": ("17 * * * *", _PARTS.format("hourly"), PATH),
    "test-x-usr-sbin-anacron-cd-run-parts-report-etc-cron.daily": (
        "25 6 * * *", _ANACRON.format("daily"), PATH),
    "test-x-usr-sbin-anacron-cd-run-parts-report-etc-cron.weekly": (
        "47 6 * * 7", _ANACRON.format("weekly"), PATH),
    "test-x-usr-sbin-anacron-cd-run-parts-report-etc-cron.monthly": (
        "52 6 1 * *", _ANACRON.format("monthly"), PATH),
    "anacron": ("30 7-23 * * *", "[ -x /etc/init.d/anacron ] && if [ ! -d /run/systemd/system ]; "
                "then /usr/sbin/invoke-rc.d anacron start >/dev/null; fi", PATH),
    "certbot": ("0 */12 * * *", "test -x /usr/bin/certbot -a \\! -d /run/systemd/system && "
                "perl -e 'sleep int(rand(43200))' && certbot -q renew --no-random-sleep-on-renew",
                PATH),
    "e2scrub_all": ("30 3 * * 0", "test -e /run/systemd/system || SERVICE_MODE=1 "
                    "/usr/lib/x86_64-linux-gnu/e2fsprogs/e2scrub_all_cron", ""),
    "e2scrub_all-2": ("10 3 * * *", "test -e /run/systemd/system || SERVICE_MODE=1 "
                      "/sbin/e2scrub_all -A -r", ""),
    "mdadm": ("57 0 * * 0", "if [ -x /usr/share/mdadm/checkarray ] && [ $(date +%d) -le 7 ]; "
              "then /usr/share/mdadm/checkarray --cron --all --idle --quiet; fi", ""),
    "ntpsec": ("25 6 * * *", "if [ ! -d /run/systemd/system ] && [ -x /usr/libexec/ntpsec/"
               "rotate-stats ] ; then /usr/libexec/ntpsec/rotate-stats ; fi", ""),
    "php": ("09,39 * * * *", "[ -x /usr/lib/php/sessionclean ] && if [ ! -d /run/systemd/system ]; "
            "then /usr/lib/php/sessionclean; fi", ""),
    "popularity-contest": ("43 14 * * *", "test -x /etc/cron.daily/popularity-contest && "
                           "/etc/cron.daily/popularity-contest --crond", PATH),
    "sysstat": ("5-55/10 * * * *", "command -v debian-sa1 > /dev/null && debian-sa1 1 1", SA_PATH),
    "sysstat-2": ("59 23 * * *", "command -v debian-sa1 > /dev/null && debian-sa1 60 2", SA_PATH),
}  # fmt: skip


def _copies(tmp_path: Path) -> list[str]:
    for name in FILES:
        shutil.copy(DEBIAN / name, tmp_path / name)
    return [str(tmp_path / name) for name in FILES]


def test_debian_system_crontabs_become_jobs_run_as_their_user(cli: Cli, tmp_path: Path) -> None:
    out = tmp_path / "jobs.toml"
    done = cli("import-crontab", "--system", *_copies(tmp_path), "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # SHELL=/bin/sh is honoured as the plain shell: no warning
    jobs = tomllib.loads(out.read_text())["jobs"]
    assert list(jobs) == list(EXPECTED)
    for name, (cron, command, path) in EXPECTED.items():
        job = jobs[name]
        assert (job["cron"], job["command"], job["run_as"]) == (cron, command, "root"), name
        assert job.get("env", {}).get("PATH", "") == path, name
        assert "root" not in job["command"].split()[0]  # the column is not glued on any more


def test_a_system_crontab_read_as_a_user_crontab_is_refused_with_a_hint(
    cli: Cli, tmp_path: Path
) -> None:
    (path,) = _copies(tmp_path)[:1]
    done = cli("import-crontab", path, "-o", str(tmp_path / "out.toml"))
    assert done.returncode == 2
    assert done.stderr.startswith(f"cronhive: {path}:18: the command starts with 'root'")
    assert "--system" in done.stderr
    assert not (tmp_path / "out.toml").exists()


def test_run_as_is_checked_against_the_policy_line_by_line(cli: Cli, tmp_path: Path) -> None:
    # The shared node runs the default policy: nobody may run as root.
    done = cli("import-crontab", "--system", *_copies(tmp_path))
    assert done.returncode == 1
    refused = [line for line in done.stderr.splitlines() if line.startswith("cronhive: refused")]
    assert len(refused) == len(EXPECTED)
    assert f"refused certbot ({tmp_path / 'certbot'}:17): " in done.stderr
    assert all("run_as" in line or "root" in line for line in refused), refused
    assert "create 0," in done.stdout
    assert cli("show", "certbot").returncode == 3


def test_with_a_grant_every_debian_entry_is_created_as_root(tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text('[users.admin]\nroles = ["admin", "scheduler"]\nrun_as = ["root"]\n')
    with running_node(tmp_path / "data", extra=["--policy", str(policy)]) as node:
        done = node("import-crontab", "--system", *_copies(tmp_path))
        assert done.returncode == 0, done.stderr
        assert f"create {len(EXPECTED)}, update 0" in done.stdout
        for name, (cron, command, _) in EXPECTED.items():
            shown = json.loads(node.ok("show", name, "--json"))
            assert shown["run_as"] == "root"
            assert shown["schedule"]["expression"] == cron
            assert shown["command"] == [command] and shown["shell"] is True
        again = node("import-crontab", "--system", *_copies(tmp_path))
        assert f"create 0, update 0, delete 0; {len(EXPECTED)} unchanged" in again.stdout


def test_shell_is_honoured(cli: Cli, tmp_path: Path) -> None:
    crontab = tmp_path / "bash-crontab"
    crontab.write_text(
        'SHELL=/bin/bash\n# name: which-shell\n0 0 * * * echo "${BASH_VERSION:+bash}"\n'
    )
    done = cli("import-crontab", str(crontab))
    assert done.returncode == 0, done.stderr
    shown = json.loads(cli.ok("show", "which-shell", "--json"))
    assert shown["command"] == ["/bin/bash", "-c", 'echo "${BASH_VERSION:+bash}"']
    assert cli.ok("trigger", "-f", "which-shell") == "bash\n"


def test_reboot_is_refused_or_reported_and_skipped(cli: Cli, tmp_path: Path) -> None:
    crontab = tmp_path / "reboot-crontab"
    crontab.write_text("@reboot /usr/bin/startup\n# name: after-reboot\n@daily true\n")
    out = tmp_path / "out.toml"
    refused = cli("import-crontab", str(crontab), "-o", str(out))
    assert refused.returncode == 2
    assert "--skip-unsupported" in refused.stderr
    done = cli("import-crontab", "--skip-unsupported", str(crontab), "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert f"skipped {crontab}:1: @reboot has no equivalent" in done.stderr
    assert list(tomllib.loads(out.read_text())["jobs"]) == ["after-reboot"]


def test_fields_split_on_space_and_tab_only(cli: Cli, tmp_path: Path) -> None:
    crontab = tmp_path / "nbsp-crontab"
    crontab.write_text("0\u00a00 * * * true\n")  # a no-break space is not a separator
    done = cli("import-crontab", str(crontab), "-o", str(tmp_path / "o.toml"))
    assert done.returncode == 2
    assert f"{crontab}:1:" in done.stderr
