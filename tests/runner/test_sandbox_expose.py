"""A file the run must read inside a hidden folder (its cached script): bound in
read-only at the sandbox's own /tmp, readable by the run's uid, nothing else shown."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from _shared.sandbox import folder_outside_tmp
from runnerkit import require_sandbox

from cronhive.runner import Runner, RunSpec, RunState, Sandbox, Stream


@pytest.fixture
def hidden_dir() -> Iterator[Path]:
    """A 0700 folder outside /tmp, hidden from runs (like the data dir)."""
    with folder_outside_tmp("cronhive-expose-", 0o700) as d:
        yield d


async def test_an_exposed_file_is_readable_and_its_folder_stays_hidden(
    tmp_path: Path, hidden_dir: Path, run_id: str
) -> None:
    script = hidden_dir / "scripts" / ("ab" * 32)
    script.parent.mkdir(mode=0o700)
    script.write_text('echo "ran $0 as $(id -u)"; ls -A "$1" | wc -l; echo hi > "$0"\n')
    script.chmod(0o644)
    (hidden_dir / "scripts" / "other").write_text("another script\n")
    sb = Sandbox.probe(hide=[hidden_dir])
    if sb.unavailable:
        require_sandbox()
    r = Runner(tmp_path / "spool", sandbox=sb)
    spec = RunSpec(run_id=run_id, argv=["sh", str(script), str(script.parent)], expose=(script,))
    result = await (await r.start(spec)).wait()
    out = b"".join([d async for d in r.get(run_id).follow(Stream.STDOUT)]).decode()
    err = b"".join([d async for d in r.get(run_id).follow(Stream.STDERR)]).decode()
    assert result.state is RunState.FAILED, (out, err)  # the write to it failed
    lines = out.splitlines()
    uid = 65534 if os.geteuid() == 0 else os.geteuid()  # nobody on a root node
    assert lines[0] == f"ran /tmp/cronhive-{script.name} as {uid}"
    assert lines[1] == "0"  # the folder it came from is still an empty tmpfs
    assert "Read-only file system" in err or "Permission denied" in err
    assert script.read_text().startswith("echo")  # unchanged on the host
