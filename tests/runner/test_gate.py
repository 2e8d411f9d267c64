"""Gated runs: the sandbox is set up ahead and the command waits at the gate until `go`
(a slot armed ahead of its instant). Real bubblewrap, real processes."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import pytest
from _shared import procs
from runnerkit import require_sandbox

from cronhive.runner import Runner, RunSpec, RunState, Stream


@pytest.fixture
def mark(visible_dir: Path) -> Path:
    """Where a command notes when it ran: outside the sandbox's private /tmp, writable by
    the run's user (nobody, on a root node)."""
    visible_dir.chmod(0o1777)
    return visible_dir / "mark"


def _marking(mark: Path, then: str = "") -> list[str]:
    return [f"date +%s.%N >> {mark}; echo hi{then}"]


async def test_a_gated_command_starts_only_at_go_and_runs_as_usual(
    tmp_path: Path, run_id: str, mark: Path
) -> None:
    r = Runner(tmp_path / "spool", sandbox=require_sandbox())
    h = await r.start(RunSpec(run_id=run_id, argv=_marking(mark), shell=True), gated=True)
    assert h.gated and h.pid is not None
    await asyncio.sleep(0.5)  # the chain is up by now; the command must not be
    assert not mark.exists() and h.result is None
    let_go = time.time()
    h.go()
    res = await h.wait()
    assert (res.state, res.exit_code, res.error) == (RunState.SUCCEEDED, 0, None)
    assert b"".join([d async for d in h.follow(Stream.STDOUT)]) == b"hi\n"
    started = [float(x) for x in mark.read_text().split()]
    assert len(started) == 1 and started[0] >= let_go - 0.01


async def test_an_aborted_gate_never_runs_the_command(
    tmp_path: Path, run_id: str, mark: Path
) -> None:
    r = Runner(tmp_path / "spool", sandbox=require_sandbox())
    h = await r.start(RunSpec(run_id=run_id, argv=_marking(mark), shell=True), gated=True)
    await asyncio.sleep(0.2)
    h.abort()
    res = await asyncio.wait_for(h.wait(), 30)
    assert res.state is RunState.FAILED and res.exit_code is None and res.signal is None
    assert "not started" in (res.error or "")
    h.go()  # too late: nothing happens
    await asyncio.sleep(0.2)
    assert not mark.exists()


async def test_a_stop_at_the_gate_kills_the_chain_before_the_command(
    tmp_path: Path, run_id: str, mark: Path
) -> None:
    r = Runner(tmp_path / "spool", sandbox=require_sandbox())
    h = await r.start(RunSpec(run_id=run_id, argv=_marking(mark), shell=True), gated=True)
    res = await asyncio.wait_for(h.stop(grace=0.5), 30)
    assert res.state is RunState.STOPPED
    assert not mark.exists()


async def test_the_timeout_counts_from_go(tmp_path: Path, run_id: str, mark: Path) -> None:
    r = Runner(tmp_path / "spool", sandbox=require_sandbox())
    spec = RunSpec(run_id=run_id, argv=_marking(mark, "; sleep 0.3"), shell=True, timeout=1.0)
    h = await r.start(spec, gated=True)
    await asyncio.sleep(1.5)  # past the timeout, counted from the spawn
    assert h.result is None
    h.go()
    res = await h.wait()
    assert res.state is RunState.SUCCEEDED and mark.exists()


async def test_an_unisolated_run_is_never_gated(tmp_path: Path, run_id: str) -> None:
    mark = tmp_path / "mark"
    r = Runner(tmp_path / "spool")
    h = await r.start(RunSpec(run_id=run_id, argv=_marking(mark), shell=True), gated=True)
    assert not h.gated
    res = await h.wait()
    assert res.state is RunState.SUCCEEDED and mark.exists()


_GATED_NODE = """
import asyncio, sys
from pathlib import Path
from cronhive.runner import Runner, RunSpec, Sandbox

async def main() -> None:
    r = Runner(Path(sys.argv[1]), sandbox=Sandbox.probe())
    spec = RunSpec(run_id=sys.argv[2], argv=[sys.argv[3]], shell=True)
    h = await r.start(spec, gated=True)
    print(h.pid if h.gated else "not gated", flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


async def test_a_gated_command_never_runs_once_its_node_is_killed(
    tmp_path: Path, run_id: str, mark: Path
) -> None:
    require_sandbox()
    node = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _GATED_NODE,
        str(tmp_path / "spool"),
        run_id,
        _marking(mark)[0],
        stdout=asyncio.subprocess.PIPE,
    )
    assert node.stdout is not None
    line = (await asyncio.wait_for(node.stdout.readline(), 30)).decode().strip()
    assert line.isdigit(), line
    chain = int(line)
    await asyncio.sleep(0.3)  # the sandbox is up and waits at the gate
    node.kill()  # SIGKILL: the node never says go, nor anything else
    await node.wait()
    deadline = time.monotonic() + 30
    while procs.alive(chain) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert not procs.alive(chain), "the gated chain outlived its node"
    await asyncio.sleep(0.3)
    assert not mark.exists(), "a gated command ran although its node died before go"
