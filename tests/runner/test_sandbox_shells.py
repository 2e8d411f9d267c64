"""The trampoline's shell is dash where there is one, else bash: both set the same
limits, in their own `ulimit` letters and units (dash: -p, 512-byte blocks)."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from runnerkit import require_sandbox

from cronhive.runner import Limits, Runner, RunSpec, Stream

LIMITS = Limits(
    memory_bytes=3 << 30,
    cpu_seconds=50,
    processes=777,
    open_files=333,
    file_bytes=5 << 20,
    core_bytes=1 << 20,
)


def test_the_sandbox_prefers_dash() -> None:
    sandbox = require_sandbox()
    assert Path(sandbox.bash).name == ("dash" if shutil.which("dash") else "bash")


@pytest.mark.parametrize("shell", ["dash", "bash"])
async def test_each_shell_sets_the_same_limits(tmp_path: Path, shell: str, run_id: str) -> None:
    found = shutil.which(shell)
    if found is None:
        pytest.skip(f"no {shell} here")
    sandbox = replace(require_sandbox(), bash=found)
    runner = Runner(tmp_path / "spool", sandbox=sandbox, default_limits=LIMITS)
    handle = await runner.start(RunSpec(run_id=run_id, argv=["cat", "/proc/self/limits"]))
    await handle.wait()
    text = b"".join([d async for d in runner.get(run_id).follow(Stream.STDOUT)]).decode()
    limits = {line[:26].strip(): line[26:].split()[:2] for line in text.splitlines()}
    assert limits["Max address space"] == [str(3 << 30)] * 2
    assert limits["Max cpu time"] == ["50", "51"]
    assert limits["Max processes"] == ["777", "777"]
    assert limits["Max open files"] == ["333", "333"]
    assert limits["Max file size"] == [str(5 << 20)] * 2
    assert limits["Max core file size"] == [str(1 << 20)] * 2
