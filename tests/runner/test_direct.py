"""An unisolated run's limits come from the dash trampoline, not a preexec_fn (which would
make CPython fork the node instead of vfork-ing it): the limits are in force in the
command, its argv and environment reach it exactly, its exit status is its own, and a
run dash could not carry exactly (an odd environment) still gets all that, by the
preexec_fn."""

from __future__ import annotations

import errno
import os
import pwd
import shutil
import signal
from pathlib import Path

import pytest

from cronhive.runner import Limits, Runner, RunSpec, RunState, Stream, _direct, _limits
from cronhive.runner._spec import BASE_PATH

LIMITS = Limits(processes=777, open_files=333, file_bytes=5 << 20, core_bytes=0, cpu_seconds=50)
pytestmark = pytest.mark.skipif(_direct.dash() is None, reason="no dash here")


@pytest.fixture
def direct(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Runner:
    """An unisolated runner whose preexec_fn, if ever built, fails the run."""

    def refuse(*_: object) -> None:
        raise AssertionError("the unisolated path built a preexec_fn")

    monkeypatch.setattr(_limits, "preexec", refuse)
    return Runner(tmp_path / "spool", default_limits=LIMITS, drain_timeout=0.5)


async def output(runner: Runner, run_id: str, stream: Stream = Stream.STDOUT) -> bytes:
    return b"".join([d async for d in runner.get(run_id).follow(stream)])


def proc_limits(text: str) -> dict[str, list[str]]:
    return {line[:26].strip(): line[26:].split()[:2] for line in text.splitlines()}


async def test_the_limits_are_in_force_in_the_command(direct: Runner, run_id: str) -> None:
    spec = RunSpec(
        run_id=run_id, argv=["cat", "/proc/self/limits"], limits=Limits(memory_bytes=3 << 30)
    )
    res = await (await direct.start(spec)).wait()
    assert res.state is RunState.SUCCEEDED and res.error is None
    limits = proc_limits((await output(direct, run_id)).decode())
    assert limits["Max open files"] == ["333", "333"]
    assert limits["Max processes"] == ["777", "777"]
    assert limits["Max file size"] == [str(5 << 20)] * 2
    assert limits["Max core file size"] == ["0", "0"]
    assert limits["Max cpu time"] == ["50", "51"]
    if not direct.cgroups_usable:  # else memory is the cgroup's memory.max
        assert limits["Max address space"] == [str(3 << 30)] * 2


async def test_ulimit_read_by_a_shell_command(direct: Runner, run_id: str) -> None:
    spec = RunSpec(run_id=run_id, argv=["ulimit -n; ulimit -Hn; ulimit -v"], shell=True,
                   limits=Limits(memory_bytes=512 << 20))  # fmt: skip
    res = await (await direct.start(spec)).wait()
    assert res.state is RunState.SUCCEEDED
    expected = "333\n333\n" + ("unlimited\n" if direct.cgroups_usable else "524288\n")
    assert (await output(direct, run_id)).decode() == expected


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to another user needs root")
async def test_a_process_cap_stops_forks_of_the_runs_user(direct: Runner, run_id: str) -> None:
    # RLIMIT_NPROC counts the user's processes on the host, the command is one: with a
    # cap of 1 it may run but not fork. Root is never held to it, so the run is nobody's.
    script = "/bin/true & wait $! && echo forked"
    capped = RunSpec(run_id=run_id, argv=[script], shell=True, user="nobody", cwd="/",
                     limits=Limits(processes=1))  # fmt: skip
    res = await (await direct.start(capped)).wait()
    assert res.state is RunState.FAILED and res.exit_code not in (None, 0), res
    assert b"forked" not in await output(direct, run_id)
    assert b"fork" in (await output(direct, run_id, Stream.STDERR)).lower()
    free = RunSpec(run_id=f"{run_id}-free", argv=[script], shell=True, user="nobody", cwd="/")
    res = await (await direct.start(free)).wait()
    assert res.state is RunState.SUCCEEDED and await output(direct, f"{run_id}-free") == b"forked\n"


@pytest.mark.parametrize("name", ["-n", "--", "-", "a;b|c&&d", "$(id) `id` $HOME", "x y*?[", "%x"])
async def test_an_odd_command_name_is_passed_exactly(
    direct: Runner, tmp_path: Path, name: str, run_id: str
) -> None:
    bin_dir = tmp_path / "bin dir"
    bin_dir.mkdir()
    script = bin_dir / name
    script.write_text('#!/bin/sh\nfor a in "$0" "$@"; do printf "<%s>" "$a"; done\n')
    script.chmod(0o755)
    args = ["-e", "", "$PATH", "--", "a b"]
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin"}
    res = await (await direct.start(RunSpec(run_id=run_id, argv=[name, *args], env=env))).wait()
    assert (res.state, res.exit_code, res.error) == (RunState.SUCCEEDED, 0, None)
    assert (await output(direct, run_id)).decode() == "".join(
        f"<{a}>" for a in [str(script), *args]
    )
    missing = await direct.start(RunSpec(run_id=f"{run_id}-x", argv=[f"{name}-missing"], env=env))
    res = await missing.wait()
    assert (res.state, res.exit_code, res.signal) == (RunState.FAILED, None, None)
    assert res.error == str(
        FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), f"{name}-missing")
    )
    assert await output(direct, f"{run_id}-x", Stream.STDERR) == b""  # not dash's message


@pytest.mark.parametrize("code", [0, 1, 2, 124, 125, 126, 127, 255])
async def test_the_exit_status_is_the_commands(direct: Runner, code: int, run_id: str) -> None:
    # Also those the trampoline uses for its own failures: they come through a pipe only.
    res = await (
        await direct.start(RunSpec(run_id=run_id, argv=[f"exit {code}"], shell=True))
    ).wait()
    assert (res.exit_code, res.signal, res.error) == (code, None, None)


async def test_a_stop_at_once_ends_the_run_stopped(direct: Runner, run_id: str) -> None:
    # Likely still in the trampoline: dash dies of the SIGTERM, or the command does.
    h = await direct.start(RunSpec(run_id=run_id, argv=["sleep", "30"]))
    res = await h.stop(0)
    assert (res.state, res.exit_code, res.error) == (RunState.STOPPED, None, None)
    assert res.signal in (signal.SIGTERM, signal.SIGKILL)


def base_env(run_id: str) -> dict[str, str]:
    user = pwd.getpwuid(os.geteuid())
    return {"PATH": BASE_PATH, "HOME": user.pw_dir, "LANG": "C.UTF-8", "USER": user.pw_name,
            "LOGNAME": user.pw_name, "CRONHIVE_RUN_ID": run_id, "CRONHIVE_JOB": ""}  # fmt: skip


ORDINARY = {"TERM": "xterm", "SHLVL": "7", "_": "under", "ENV": "/x", "A": "multi\nline = x",
            "PATH": "/usr/bin::/bin:/no such", "Z_9": "", "BASH_ENV": "/y"}  # fmt: skip
ODD = [
    {"a-b": "1"},
    {"1x": "2"},
    {"x y": "3"},
    {"é": "4"},
    {"PATH": ""},
    {"PATH": "/bin%builtin:/usr/bin"},
] + [{name: "mine"} for name in sorted(_direct._DASH_OWNED)]


@pytest.mark.parametrize("extra", [ORDINARY, *ODD], ids=lambda e: ",".join(e))
async def test_the_environment_is_passed_exactly(
    tmp_path: Path, extra: dict[str, str], run_id: str
) -> None:
    # "env" is found on the run's PATH, or at its full path when the run's PATH is odd
    runner = Runner(tmp_path / "spool", default_limits=LIMITS)
    spec = RunSpec(run_id=run_id, argv=[shutil.which("env") or "env", "-0"], env=extra)
    res = await (await runner.start(spec)).wait()
    assert res.state is RunState.SUCCEEDED, res
    pairs = (await output(runner, run_id)).decode().split("\0")[:-1]
    assert dict(p.split("=", 1) for p in pairs) == {**base_env(run_id), **extra}
    assert len(pairs) == len({**base_env(run_id), **extra})
    assert _direct.carries({**base_env(run_id), **extra}) is (extra is ORDINARY)


ULIMIT = "cronhive: 4: ulimit: error setting limit (Operation not permitted)"


@pytest.mark.parametrize(
    ("said", "dropped", "error"),
    [
        (b"127", "exec: x: not found", "[Errno 2] No such file or directory: 'x'"),
        (b"126", "exec: x: Permission denied", "[Errno 13] Permission denied: 'x'"),
        (b"2", "exec: x: Argument list too long", "[Errno 7] Argument list too long: 'x'"),
        (
            b"2",
            "cannot open /dev/null: Nope",
            "could not start the run: cannot open /dev/null: Nope",
        ),
        (b"125", ULIMIT, f"could not set the run's rlimits: {ULIMIT}"),
        (b"124", "", "could not join the run's cgroup: exit 124"),
    ],
)
def test_what_a_failed_trampoline_says(said: bytes, dropped: str, error: str) -> None:
    assert _direct.failure(said, f"{dropped}\n".encode() if dropped else b"", "x") == error
