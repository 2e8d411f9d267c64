"""Stopping a tree: SIGTERM-ignoring members, daemons that left the group, no orphans."""

from __future__ import annotations

import asyncio
import os
import time
import uuid

import psutil

from cronhive.runner import Runner, RunSpec, RunState, Stream

# Leader and children all ignore SIGTERM; they print their PIDs then sleep.
STUBBORN = (
    "trap '' TERM; "
    "sh -c 'trap \"\" TERM; echo $$; sleep 60' & "
    "sh -c 'trap \"\" TERM; echo $$; sleep 60 & echo $!; wait' & "
    "echo $$; wait"
)


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


async def pids_from(runner: Runner, run_id: str, count: int) -> list[int]:
    """The first `count` PIDs the run printed, as the host sees them (a sandboxed run
    prints the PIDs of its own PID namespace)."""
    buf = b""
    async for data in runner.get(run_id).follow(Stream.STDOUT):
        buf += data
        if buf.count(b"\n") >= count:
            break
    return host_pids(runner, run_id, [int(x) for x in buf.split()])


def host_pids(runner: Runner, run_id: str, pids: list[int]) -> list[int]:
    if runner.sandbox is None:
        return pids
    leader = runner.get(run_id).pid
    (init,) = psutil.Process(leader).children()  # bwrap's PID 1 of the sandbox
    ns = os.readlink(f"/proc/{init.pid}/ns/pid")
    table: dict[int, int] = {}
    for pid in psutil.pids():
        try:
            if os.readlink(f"/proc/{pid}/ns/pid") != ns:
                continue
            with open(f"/proc/{pid}/status") as f:
                line = next(x for x in f if x.startswith("NSpid:"))
        except (OSError, StopIteration):
            continue
        table[int(line.split()[-1])] = pid
    return [table[p] for p in pids]


async def test_tree_ignoring_sigterm_is_gone_within_grace(runner: Runner, run_id: str) -> None:
    h = await runner.start(RunSpec(run_id=run_id, argv=[STUBBORN], shell=True))
    pids = await pids_from(runner, run_id, 4)
    assert len(pids) == 4 and all(alive(p) for p in pids)
    t0 = time.monotonic()
    res = await h.stop(grace=0.5)
    took = time.monotonic() - t0
    assert res.state is RunState.STOPPED and res.signal == 9 and res.exit_code is None
    assert took < 0.5 + 10  # the grace, then SIGKILL: liveness, not speed (loaded hosts)
    assert not [p for p in pids if alive(p)]


async def test_setsid_daemon_is_caught_on_stop(runner: Runner, run_id: str) -> None:
    # double fork + setsid: leaves group and session; caught by its CRONHIVE_RUN_ID
    script = "setsid sh -c 'echo $$; exec sleep 60' > /dev/null & sleep 60"
    h = await runner.start(
        RunSpec(run_id=run_id, argv=[script.replace("> /dev/null", ">&2")], shell=True)
    )
    buf = b""
    async for data in h.follow(Stream.STDERR):
        buf += data
        if b"\n" in buf:
            break
    (daemon,) = host_pids(runner, run_id, [int(buf)])
    assert os.getsid(daemon) == daemon != h.pid
    res = await h.stop(grace=0.2)
    assert res.state is RunState.STOPPED
    for _ in range(50):
        if not alive(daemon):
            break
        await asyncio.sleep(0.02)
    assert not alive(daemon)


async def test_leftover_group_members_die_with_the_leader(runner: Runner, run_id: str) -> None:
    h = await runner.start(RunSpec(run_id=run_id, argv=["sleep 60 & echo $!"], shell=True))
    res = await h.wait()
    assert res.state is RunState.SUCCEEDED
    child = int(b"".join([d async for d in h.follow(Stream.STDOUT)]))
    for _ in range(50):
        if not _tagged_alive(run_id):
            break
        await asyncio.sleep(0.02)
    assert not _tagged_alive(run_id)  # the sleep carried the run's mark: nothing left with it
    if runner.sandbox is None:  # a sandbox's PID is of its own namespace, gone with it
        assert not alive(child)


def _tagged_alive(run_id: str) -> list[psutil.Process]:
    return [p for p in psutil.process_iter(["environ"]) if _tagged(p, run_id)]


async def test_escaped_pipe_holder_does_not_hang_the_run(runner: Runner) -> None:
    # a setsid'ed child keeps stdout open after the leader exits: the run still ends.
    # A run id of its own: another test's leftover must not count as this one's.
    run_id = f"escaped-{uuid.uuid4().hex[:8]}"
    h = await runner.start(
        RunSpec(run_id=run_id, argv=["setsid sleep 60 & echo started"], shell=True)
    )
    res = await asyncio.wait_for(h.wait(), 5)
    assert res.state is RunState.SUCCEEDED
    assert b"".join([d async for d in h.follow(Stream.STDOUT)]) == b"started\n"
    await h.stop(0)  # kills the escaped sleep by its environment mark
    assert not _tagged_alive(run_id)


def _tagged(p: psutil.Process, run_id: str) -> bool:
    try:
        return (p.info["environ"] or {}).get("CRONHIVE_RUN_ID") == run_id and alive(p.pid)
    except psutil.Error:
        return False


async def test_stop_all(runner: Runner, run_id: str) -> None:
    hs = [
        await runner.start(RunSpec(run_id=f"{run_id}-{i}", argv=["sleep", "60"])) for i in range(5)
    ]
    results = await runner.stop_all(grace=1)
    assert [r.state for r in results] == [RunState.STOPPED] * 5
    assert all(h.result is not None for h in hs)


async def test_child_in_its_own_group_is_caught_by_session(runner: Runner, run_id: str) -> None:
    # the child moves to its own process group, still inside the run's session
    # perl, not this interpreter: a sandboxed run may not reach this test's venv
    code = 'setpgrp(0, 0); $| = 1; print "$$\\n"; sleep 60'
    h = await runner.start(RunSpec(run_id=run_id, argv=['perl -e "$1" & wait', code], shell=True))
    child = (await pids_from(runner, run_id, 1))[0]
    assert os.getpgid(child) != h.pid and os.getsid(child) == h.pid
    res = await h.stop(grace=0.2)
    assert res.state is RunState.STOPPED
    assert not alive(child)
