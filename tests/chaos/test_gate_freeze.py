"""A node frozen (SIGSTOP) while a sandboxed run it armed ahead of its slot waits at the
gate (issue 17 under the fencing rules of issue 10): the command never runs on the frozen
node, its supervisor kills the waiting sandbox when the lease lapses, and the slot runs
once, on another node. Real bubblewrap, real node processes, a private PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from _shared import procs
from _shared.sandbox import folder_outside_tmp, require_sandbox
from chaoskit import Chaos, executions, job_spec, wait_for

from cronhive.model import RunState

TTL = 3.0
SANDBOXED = {"isolation": "bwrap"}


def _sandboxes(node_pid: int) -> list[int]:
    """The bubblewrap processes `node_pid` started (not its supervisor)."""
    return [pid for pid, (name, _) in procs.descendants(node_pid).items() if name == "bwrap"]


def _alive(pids: list[int]) -> list[str]:
    """What still lives of these processes and everything below them (a killed child of a
    frozen node stays a zombie until the node reaps it)."""
    found = []
    for root in pids:
        found += [str(pid) for pid in (root, *procs.descendants(root)) if procs.alive(pid)]
    return found


@pytest.mark.slow
@pytest.mark.timeout(150)
async def test_a_node_frozen_with_a_run_at_the_gate_never_runs_it(chaos: Chaos) -> None:
    require_sandbox()
    with folder_outside_tmp("cronhive-gate-freeze-", 0o1777) as marks:
        mark = marks / "ran"
        command = ("sh", "-c", f'echo "$CRONHIVE_NODE $CRONHIVE_ATTEMPT" >> {mark}')
        a = chaos.node("a", lease_ttl=TTL, settings=SANDBOXED).start()
        await chaos.wait_joined(["a"])
        # One slot, a few seconds out (the job's next one is an hour later).
        slot = (datetime.now(UTC) + timedelta(seconds=4)).replace(microsecond=0)
        job = await chaos.store.create_job(
            job_spec(command, name="gated", schedule="every 1h"),
            next_fire_at=slot,
            created_by="alice",
            now=datetime.now(UTC),
        )

        # Armed on a (claimed for its slot), then its sandbox set up behind the gate.
        async def armed() -> bool:
            rows = await executions(chaos.store, job.id)
            return any(r.state is RunState.RUNNING for r in rows)

        await wait_for(armed, within=30, what="the slot armed on a")
        loop = asyncio.get_running_loop()
        last_moment = loop.time() + (slot - datetime.now(UTC)).total_seconds() - 0.1
        while not _sandboxes(a.pid) and loop.time() < last_moment:
            await asyncio.sleep(0.01)
        assert datetime.now(UTC) < slot, "the test came too late to freeze a before the slot"
        gated = _sandboxes(a.pid)
        a.freeze()
        try:
            b = chaos.node("b", lease_ttl=TTL, settings=SANDBOXED).start()

            async def retried_on_b() -> bool:
                rows = await executions(chaos.store, job.id)
                return any(r.attempt == 2 and r.state is RunState.SUCCEEDED for r in rows)

            await wait_for(retried_on_b, within=60, what="the slot retried and run on b")
            if gated:  # a's supervisor killed the sandbox waiting at the gate

                async def killed() -> bool:
                    return not _alive(gated)

                await wait_for(killed, within=10, what="a's gated sandbox killed")
        finally:
            a.thaw()
        # Thawed, a finds its lease gone: it must not start the run it held.
        ids = await chaos.wait_joined(["a", "b"])
        await asyncio.sleep(2 * TTL)
        assert a.alive() and b.alive()
        mark_lines = mark.read_text().splitlines()

    rows = sorted(await executions(chaos.store, job.id), key=lambda r: r.attempt)
    assert [(r.attempt, r.state) for r in rows] == [
        (1, RunState.LOST),
        (2, RunState.SUCCEEDED),
    ], chaos.logs()
    assert rows[1].node_id == ids["b"]
    assert rows[1].scheduled_for == slot
    # The command ran once, on b; never on the frozen node.
    assert mark_lines == ["b 2"], f"frozen at the gate: {bool(gated)}\n{chaos.logs()}"
