"""What only the sandbox does: hiding, a clean chain, refusal when it cannot work; and what
both modes must do alike (default rlimits, SIGTERM reaching the command's own handler)."""

from __future__ import annotations

import os
import shutil
import signal
from dataclasses import replace
from pathlib import Path

import pytest
from runnerkit import require_sandbox

from cronhive.runner import Limits, Runner, RunSpec, RunState, Sandbox, Stream, _sandbox


async def output(runner: Runner, run_id: str, stream: Stream = Stream.STDOUT) -> str:
    return b"".join([d async for d in runner.get(run_id).follow(stream)]).decode()


async def test_hidden_folders_are_empty_and_hidden_files_empty(
    tmp_path: Path, visible_dir: Path, run_id: str
) -> None:
    hidden, shown = visible_dir / "secret", visible_dir / "shown"
    for d in (hidden, shown):
        d.mkdir(mode=0o755)
        (d / "f").write_text("data\n")
        (d / "f").chmod(0o644)
    lone = visible_dir / "lone-secret"
    lone.write_text("data\n")
    lone.chmod(0o644)
    sb = Sandbox.probe(hide=[hidden, lone])
    if sb.unavailable:
        require_sandbox()
    r = Runner(tmp_path / "spool", sandbox=sb)
    script = f"ls -A {hidden} | wc -l; cat {shown}/f; wc -c < {lone}; cat {hidden}/f"
    res = await (await r.start(RunSpec(run_id=run_id, argv=[script], shell=True))).wait()
    assert await output(r, run_id) == "0\ndata\n0\n"
    assert "No such file or directory" in await output(r, run_id, Stream.STDERR)
    assert res.exit_code == 1


async def test_the_spool_folder_is_hidden(tmp_path: Path, run_id: str) -> None:
    r = Runner(tmp_path / "spool", sandbox=require_sandbox())
    h = await r.start(RunSpec(run_id=f"{run_id}-a", argv=["echo secret; sleep 30"], shell=True))
    async for _ in h.follow(Stream.STDOUT):
        break  # its spool file exists now
    probe = f"ls -A {r.spool_dir} | wc -l; cat {r.spool_dir}/{run_id}-a.stdout"
    res = await (await r.start(RunSpec(run_id=f"{run_id}-b", argv=[probe], shell=True))).wait()
    assert await output(r, f"{run_id}-b") == "0\n" and res.exit_code == 1
    await r.stop_all(0)


async def test_the_runs_environment_never_reaches_the_chain(tmp_path: Path, run_id: str) -> None:
    # bash, bwrap and the reporter may be root: a job's PERL5OPT or BASH_ENV must not
    # run code in them. Here either would make the run fail or leave the marker.
    r = Runner(tmp_path / "spool", sandbox=require_sandbox())
    marker = tmp_path / "marker"
    evil = tmp_path / "evil.sh"
    evil.write_text(f"touch {marker}\n")
    env = {"PERL5OPT": "-Mno::such::module", "BASH_ENV": str(evil), "LD_PRELOAD": ""}
    h = await r.start(RunSpec(run_id=run_id, argv=["echo", "ok"], env=env))
    res = await h.wait()
    assert (res.state, await output(r, run_id)) == (RunState.SUCCEEDED, "ok\n")
    assert not marker.exists()


async def test_only_the_standard_fds_reach_the_command(runner: Runner, run_id: str) -> None:
    h = await runner.start(RunSpec(run_id=run_id, argv=["ls /proc/self/fd"], shell=True))
    await h.wait()
    assert (await output(runner, run_id)).split() == ["0", "1", "2", "3"]  # 3: ls's own


async def test_default_rlimits_apply(runner: Runner, run_id: str) -> None:
    h = await runner.start(RunSpec(run_id=run_id, argv=["cat", "/proc/self/limits"]))
    await h.wait()
    limits = {
        line[:26].strip(): line[26:].split()[:2]
        for line in (await output(runner, run_id)).splitlines()
    }
    assert limits["Max core file size"] == ["0", "0"]
    assert limits["Max open files"] == ["8192", "8192"]
    assert limits["Max processes"] == ["4096", "4096"]
    assert limits["Max file size"] == [str(16 << 30)] * 2


async def test_sigterm_reaches_the_commands_own_handler(runner: Runner, run_id: str) -> None:
    script = "trap 'echo bye; exit 3' TERM; echo up; sleep 30 & wait"
    h = await runner.start(RunSpec(run_id=run_id, argv=[script], shell=True))
    async for _ in h.follow(Stream.STDOUT):
        break
    res = await h.stop(grace=10)
    assert (res.state, res.exit_code, res.signal) == (RunState.STOPPED, 3, None)
    assert await output(runner, run_id) == "up\nbye\n"


@pytest.mark.parametrize(
    ("script", "code", "sig"), [("exit 137", 137, None), ("exit 130", 130, None)]
)
async def test_high_exit_codes_are_not_signals(
    runner: Runner, script: str, code: int, sig: int | None, run_id: str
) -> None:
    res = await (await runner.start(RunSpec(run_id=run_id, argv=[script], shell=True))).wait()
    assert (res.exit_code, res.signal) == (code, sig)


async def test_a_sandbox_that_cannot_work_refuses_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_id: str
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name, path=None: None)
    sb = Sandbox.probe()
    assert sb.unavailable is not None and "bwrap" in sb.unavailable
    r = Runner(tmp_path / "spool", sandbox=sb)
    res = await (await r.start(RunSpec(run_id=run_id, argv=["true"]))).wait()
    assert res.state is RunState.FAILED and res.exit_code is None
    assert res.error is not None and 'isolation = "none"' in res.error


def test_the_report_is_parsed_strictly() -> None:
    parse = _sandbox.Report.parse
    assert parse(b"r\nw 2304\n") == _sandbox.Report(up=True, status=2304)
    assert parse(b"r\ne 2 exec\nw 32512\n").errno == 2
    assert parse(b"garbage\nw -1\nw 1e9\n") == _sandbox.Report()
    assert _sandbox.outcome(_sandbox.Report(up=True), -signal.SIGKILL, ["x"], None) == (
        None,
        signal.SIGKILL,
        None,
    )
    assert _sandbox.outcome(_sandbox.Report(), 1, ["x"], None)[2] is not None  # never up


async def test_cgroup_v2_limits_apply_to_the_whole_tree(runner: Runner, run_id: str) -> None:
    if not runner.cgroups_usable:
        pytest.skip(
            "no cgroup v2 with a delegated memory controller here (a cgroup v1 host, like "
            "these CI machines): limits fall back to rlimits, tested elsewhere"
        )
    limits = Limits(memory_bytes=256 << 20, processes=64, cpu_weight=50)
    script = (
        'g=$(sed -n "s/^0:://p" /proc/self/cgroup); cd "/sys/fs/cgroup$g" &&'
        " cat memory.max; cat pids.max 2>/dev/null || echo -; cat cpu.weight 2>/dev/null || echo -"
    )
    h = await runner.start(RunSpec(run_id=run_id, argv=[script], shell=True, limits=limits))
    res = await h.wait()
    assert res.limits_applied == "cgroup"
    memory, pids, weight = (await output(runner, run_id)).split()
    assert memory == str(256 << 20)
    assert pids in ("64", "-") and weight in ("50", "-")  # "-": controller not delegated


@pytest.mark.skipif(os.geteuid() != 0, reason="the run_user applies on a root node only")
async def test_the_run_user_is_whom_a_run_runs_as_unless_it_names_one(
    tmp_path: Path, run_id: str
) -> None:
    r = Runner(tmp_path / "spool", sandbox=require_sandbox())
    res = await (await r.start(RunSpec(run_id=run_id, argv=["id", "-un"]))).wait()
    assert res.state is RunState.SUCCEEDED and await output(r, run_id) == "nobody\n"
    own = await r.start(RunSpec(run_id=f"{run_id}-own", argv=["id", "-un"], user="root"))
    assert (await own.wait()).state is RunState.SUCCEEDED
    assert await output(r, f"{run_id}-own") == "root\n"
    gone = Runner(tmp_path / "spool2", sandbox=replace(require_sandbox(), run_user="no-such-xyz"))
    res = await (await gone.start(RunSpec(run_id=f"{run_id}-gone", argv=["true"]))).wait()
    assert res.state is RunState.FAILED
    assert res.error == "unknown user 'no-such-xyz' (the node's run_user)"
