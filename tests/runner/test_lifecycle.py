"""Exit codes, signals, timeouts, start failures, env and spool permissions, real processes."""

from __future__ import annotations

import os
import signal
import stat
from pathlib import Path

import pytest

from cronhive.errors import Conflict, InvalidInput, NotFound
from cronhive.runner import Limits, Runner, RunSpec, RunState, Stream


async def read_all(runner: Runner, run_id: str, stream: Stream = Stream.STDOUT) -> bytes:
    return b"".join([d async for d in runner.get(run_id).follow(stream)])


@pytest.mark.parametrize(
    ("script", "state", "code", "sig"),
    [
        ("exit 0", RunState.SUCCEEDED, 0, None),
        ("exit 3", RunState.FAILED, 3, None),
        ("kill -SEGV $$", RunState.FAILED, None, signal.SIGSEGV),
        ("kill -KILL $$", RunState.FAILED, None, signal.SIGKILL),
    ],
)
async def test_exit_code_and_signal(
    runner: Runner, script: str, state: RunState, code: int | None, sig: int | None, run_id: str
) -> None:
    h = await runner.start(RunSpec(run_id=run_id, argv=[script], shell=True))
    assert h.pid is not None and h.state is RunState.RUNNING
    res = await h.wait()
    assert (res.state, res.exit_code, res.signal, res.error) == (state, code, sig, None)
    assert h.state is state and h.result == res
    assert res.started_at <= res.finished_at


async def test_output_streams_and_shell_args(runner: Runner, run_id: str) -> None:
    h = await runner.start(
        RunSpec(
            run_id=run_id, argv=['printf "%s|%s" "$1" "$2"; echo oops >&2', "a b", "c"], shell=True
        )
    )
    res = await h.wait()
    assert await read_all(runner, run_id) == b"a b|c"
    assert await read_all(runner, run_id, Stream.STDERR) == b"oops\n"
    assert (res.stdout_bytes, res.stderr_bytes) == (5, 5)


async def test_argv_is_not_a_shell(runner: Runner, run_id: str) -> None:
    h = await runner.start(RunSpec(run_id=run_id, argv=["echo", "$HOME;", "`id`"]))
    await h.wait()
    assert await read_all(runner, run_id) == b"$HOME; `id`\n"


@pytest.mark.parametrize(
    ("spec_kw", "needle"),
    [
        ({"argv": ["/no/such/exe"]}, "No such file or directory: '/no/such/exe'"),
        ({"argv": ["no-such-command-xyz"]}, "No such file or directory"),
        ({"argv": ["true"], "cwd": "/no/such/dir"}, "No such file or directory: '/no/such/dir'"),
        ({"argv": ["/"]}, "Permission denied"),
        ({"argv": ["true"], "user": "no-such-user-xyz"}, "unknown user"),
    ],
)
async def test_cannot_start_is_a_failed_run(
    runner: Runner, spec_kw: dict[str, object], needle: str, run_id: str
) -> None:
    h = await runner.start(RunSpec(run_id=run_id, **spec_kw))  # type: ignore[arg-type]
    res = await h.wait()
    assert res.state is RunState.FAILED
    assert res.exit_code is None and res.signal is None
    assert res.error is not None and needle in res.error
    assert await read_all(runner, run_id) == b""


async def test_timeout_reports_timed_out(runner: Runner, run_id: str) -> None:
    h = await runner.start(RunSpec(run_id=run_id, argv=["sleep", "30"], timeout=0.2, grace=1))
    res = await h.wait()
    assert res.state is RunState.TIMED_OUT
    assert res.signal == signal.SIGTERM and res.exit_code is None


async def test_stop_after_exit_keeps_the_result(runner: Runner, run_id: str) -> None:
    h = await runner.start(RunSpec(run_id=run_id, argv=["true"]))
    first = await h.wait()
    assert await h.stop() == first
    assert first.state is RunState.SUCCEEDED


async def test_clean_environment(
    runner: Runner, monkeypatch: pytest.MonkeyPatch, run_id: str
) -> None:
    monkeypatch.setenv("CRONHIVE_DB_PASSWORD", "secret")
    h = await runner.start(
        RunSpec(run_id=run_id, argv=["env"], env={"FOO": "bar", "PATH": "/bin"}, job_name="nightly")
    )
    await h.wait()
    env = dict(
        line.split("=", 1) for line in (await read_all(runner, run_id)).decode().splitlines()
    )
    assert "CRONHIVE_DB_PASSWORD" not in env
    assert env["FOO"] == "bar" and env["PATH"] == "/bin"
    assert env["CRONHIVE_RUN_ID"] == run_id and env["CRONHIVE_JOB"] == "nightly"
    assert {"HOME", "LANG", "USER", "LOGNAME"} <= env.keys()
    assert set(env) <= {"PATH", "HOME", "LANG", "USER", "LOGNAME", "FOO", "PWD", "SHLVL", "_"} | {
        "CRONHIVE_RUN_ID",
        "CRONHIVE_JOB",
    }


async def test_spool_permissions_and_discard(runner: Runner, run_id: str) -> None:
    h = await runner.start(RunSpec(run_id=run_id, argv=["echo x; echo y >&2"], shell=True))
    await h.wait()
    quiet_id = f"{run_id}-quiet"
    quiet = await runner.start(RunSpec(run_id=quiet_id, argv=["true"]))
    await quiet.wait()  # no output, no spool files (created on the first byte)
    assert await read_all(runner, quiet_id) == b""
    runner.discard(quiet_id)
    assert stat.S_IMODE(runner.spool_dir.stat().st_mode) == 0o700
    files = sorted(p.name for p in runner.spool_dir.iterdir())
    assert files == [f"{run_id}.stderr", f"{run_id}.stdout"]
    for name in files:
        assert stat.S_IMODE((runner.spool_dir / name).stat().st_mode) == 0o600
    runner.discard(run_id)
    assert list(runner.spool_dir.iterdir()) == []
    with pytest.raises(NotFound):
        runner.get(run_id)
    with pytest.raises(NotFound):
        await read_all_handle(h)


async def read_all_handle(h: object) -> bytes:
    from cronhive.runner import RunHandle

    assert isinstance(h, RunHandle)
    return b"".join([d async for d in h.follow(Stream.STDOUT)])


async def test_existing_spool_dir_is_tightened(tmp_path: Path) -> None:
    d = tmp_path / "spool"
    d.mkdir(mode=0o755)
    Runner(d)
    assert stat.S_IMODE(d.stat().st_mode) == 0o700


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"run_id": "../x", "argv": ["true"]}, "run_id"),
        ({"run_id": "", "argv": ["true"]}, "run_id"),
        ({"run_id": "r", "argv": []}, "argv"),
        ({"run_id": "r", "argv": "true"}, "argv"),
        ({"run_id": "r", "argv": ["a\x00b"]}, "argv"),
        ({"run_id": "r", "argv": ["true"], "env": {"A=B": "x"}}, "env"),
        ({"run_id": "r", "argv": ["true"], "timeout": -1}, "timeout"),
        ({"run_id": "r", "argv": ["true"], "limits": Limits(memory_bytes=0)}, "limits"),
    ],
)
async def test_malformed_spec_raises(runner: Runner, kw: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidInput) as err:
        await runner.start(RunSpec(**kw))  # type: ignore[arg-type]
    assert err.value.field == field
    assert runner.handles() == []


async def test_duplicate_and_running_discard_conflict(runner: Runner, run_id: str) -> None:
    h = await runner.start(RunSpec(run_id=run_id, argv=["sleep", "30"]))
    with pytest.raises(Conflict):
        await runner.start(RunSpec(run_id=run_id, argv=["true"]))
    with pytest.raises(Conflict):
        runner.discard(run_id)
    assert runner.get(run_id) is h
    res = await h.stop(0)
    assert res.state is RunState.STOPPED and res.signal in (signal.SIGTERM, signal.SIGKILL)


async def test_not_executable_file(runner: Runner, tmp_path: Path, run_id: str) -> None:
    script = tmp_path / "script"  # a sandboxed run has its own /tmp: cannot see tmp_path
    script.write_text("echo hi\n")
    script.chmod(0o644)
    path = "/etc/passwd" if runner.sandbox else str(script)  # 0644 too, visible to all
    res = await (await runner.start(RunSpec(run_id=run_id, argv=[path]))).wait()
    assert res.state is RunState.FAILED
    assert res.error is not None and "Permission denied" in res.error


async def test_rlimits_applied(runner: Runner, run_id: str) -> None:
    h = await runner.start(
        RunSpec(
            run_id=run_id,
            argv=["ulimit -v; ulimit -t"],
            shell=True,
            limits=Limits(memory_bytes=512 << 20, cpu_seconds=7),
        )
    )
    res = await h.wait()
    if runner.cgroups_usable:
        assert res.limits_applied == "cgroup"
    else:
        assert res.limits_applied == "rlimit"
        assert await read_all(runner, run_id) == b"524288\n7\n"


async def test_cpu_limit_kills(runner: Runner, run_id: str) -> None:
    h = await runner.start(
        RunSpec(
            run_id=run_id, argv=["while :; do :; done"], shell=True, limits=Limits(cpu_seconds=1)
        )
    )
    res = await h.wait()
    assert res.state is RunState.FAILED and res.signal in (signal.SIGXCPU, signal.SIGKILL)


async def test_user_switch(runner: Runner, run_id: str) -> None:
    if os.geteuid() != 0:
        h = await runner.start(RunSpec(run_id=run_id, argv=["id"], user="nobody"))
        res = await h.wait()
        assert res.state is RunState.FAILED and res.error is not None and "root" in res.error
        return
    h = await runner.start(RunSpec(run_id=run_id, argv=["id", "-u"], user="nobody", cwd="/"))
    res = await h.wait()
    assert res.state is RunState.SUCCEEDED
    import pwd

    assert (await read_all(runner, run_id)).strip() == str(pwd.getpwnam("nobody").pw_uid).encode()
