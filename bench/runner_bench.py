"""Runner throughput against the raw machine: spawn rate and output MB/s.

Run: ``.venv/bin/python bench/runner_bench.py [--runs 2000] [--concurrency 50] [--mib 1024]``

Prints short runs per second (``/bin/true``) through the Runner and through plain
``asyncio.create_subprocess_exec`` + ``wait()`` at the same concurrency, and their ratio
(target >= 0.8); then bytes per second of ``head -c N /dev/zero`` read by one follower
against the same bytes through a plain ``| cat > /dev/null`` pipe; then the cost of
isolation: milliseconds per run, one after another, of a raw spawn, an unisolated run
(without and with the default rlimits, set by the dash trampoline or, for an environment
dash cannot carry, by a preexec_fn) and a sandboxed run (bubblewrap).

``--isolation-only`` prints only the last part (``--serial N`` runs each, best of rounds);
``--spawn-only`` compares the spawn primitives alone (Popen's vfork, posix_spawn, fork).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from cronhive.runner import Runner, RunSpec, RunState, Sandbox, Stream

# An environment the dash trampoline cannot carry exactly: its limits take the preexec_fn.
PREEXEC_ENV = {"NOT-A-SHELL-NAME": "1"}


async def rate(n: int, concurrency: int, one: Callable[[int], Awaitable[None]]) -> float:
    sem = asyncio.Semaphore(concurrency)

    async def guarded(i: int) -> None:
        async with sem:
            await one(i)

    t0 = time.perf_counter()
    await asyncio.gather(*(guarded(i) for i in range(n)))
    return n / (time.perf_counter() - t0)


async def raw_rate(n: int, concurrency: int) -> float:
    async def one(_: int) -> None:
        proc = await asyncio.create_subprocess_exec("/bin/true")
        await proc.wait()

    return await rate(n, concurrency, one)


async def raw_pipes_rate(n: int, concurrency: int) -> float:
    async def one(_: int) -> None:
        proc = await asyncio.create_subprocess_exec(
            "/bin/true", stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        await proc.communicate()

    return await rate(n, concurrency, one)


async def runner_rate(
    n: int,
    concurrency: int,
    spool: Path,
    tag: str,
    runner: Runner | None = None,
    env: dict[str, str] | None = None,
) -> float:
    runner = runner or Runner(spool, default_limits=None)

    async def one(i: int) -> None:
        h = await runner.start(RunSpec(run_id=f"{tag}{i}", argv=["/bin/true"], env=env or {}))
        res = await h.wait()
        assert res.state is RunState.SUCCEEDED, res

    r = await rate(n, concurrency, one)
    for h in runner.handles():
        runner.discard(h.run_id)
    return r


async def follow_mbps(mib: int, spool: Path) -> float:
    runner = Runner(spool, default_limits=None)
    t0 = time.perf_counter()
    h = await runner.start(RunSpec(run_id="big", argv=["head", "-c", f"{mib}M", "/dev/zero"]))
    n = 0
    async for data in h.follow(Stream.STDOUT):
        n += len(data)
    await h.wait()
    dt = time.perf_counter() - t0
    assert n == mib << 20
    runner.discard("big")
    return n / dt / 1e6


def cat_mbps(mib: int) -> float:
    t0 = time.perf_counter()
    subprocess.run(f"head -c {mib}M /dev/zero | cat > /dev/null", shell=True, check=True)
    return (mib << 20) / (time.perf_counter() - t0) / 1e6


async def serial_ms(n: int, one: Callable[[int], Awaitable[None]]) -> float:
    """Wall milliseconds per run of `n` runs one after another. (Not CPU: a sandbox's
    init and reporter are never reaped into this process's children's times.)"""
    t0 = time.perf_counter()
    for i in range(n):
        await one(i)
    return (time.perf_counter() - t0) / n * 1000


async def isolation_cost(n: int, rounds: int, spool: Path) -> None:
    sandbox = Sandbox.probe()
    if sandbox.unavailable:
        print(f"isolation: bubblewrap unusable here ({sandbox.unavailable})")
        return
    runners = {
        "runner, isolation none, no rlimits": Runner(spool / "a", default_limits=None),
        "runner, isolation none (default)": Runner(spool / "b"),
        # what the default was before the dash trampoline: an env dash cannot carry exactly
        "runner, isolation none, by preexec_fn": Runner(spool / "e"),
        "runner, bwrap sandbox (default)": Runner(spool / "c", sandbox=sandbox),
    }
    bash = shutil.which("bash")
    if bash and bash != sandbox.bash:  # what the default's trampoline was before dash
        bashed = replace(sandbox, bash=bash)
        runners["runner, bwrap sandbox, bash trampoline"] = Runner(spool / "d", sandbox=bashed)

    async def raw(_: int) -> None:
        proc = await asyncio.create_subprocess_exec("/bin/true")
        await proc.wait()

    def through(runner: Runner, tag: str, env: dict[str, str]) -> Callable[[int], Awaitable[None]]:
        async def one(i: int) -> None:
            h = await runner.start(RunSpec(run_id=f"{tag}{i}", argv=["/bin/true"], env=env))
            res = await h.wait()
            assert res.state is RunState.SUCCEEDED, res
            runner.discard(h.run_id)

        return one

    cases: dict[str, Callable[[int], Awaitable[None]]] = {"raw asyncio spawn+wait": raw}
    for k, (name, runner) in enumerate(runners.items()):
        cases[name] = through(
            runner, f"i{k}-", {"NOT-A-SHELL-NAME": "1"} if "preexec" in name else {}
        )
    best: dict[str, float] = {}
    for _ in range(rounds):  # interleaved, best of rounds: drift hits all alike
        for name, one in cases.items():
            wall = await serial_ms(n, one)
            best[name] = min(best.get(name, wall), wall)
    base = best["runner, isolation none, no rlimits"]
    print(f"isolation cost (/bin/true, {n} runs one after another, best of {rounds}):")
    for name, wall in best.items():
        print(f"  {name:38} {wall:6.2f} ms per run  {wall / base:5.2f}x")


def spawn_primitives(n: int, rounds: int) -> None:
    """Popen (vfork) against os.posix_spawn for the same child: /bin/true, /dev/null in,
    both outputs to pipes, a new session, a clean env; spawn, then waitpid. posix_spawn
    cannot chdir, switch users or close stray fds in Python 3.11, so it does less."""
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
    r1, w1 = os.pipe2(os.O_CLOEXEC)
    r2, w2 = os.pipe2(os.O_CLOEXEC)

    def popen(**kw: Any) -> Callable[[], None]:
        def one() -> None:
            p = subprocess.Popen(["/bin/true"], stdin=subprocess.DEVNULL, stdout=w1, stderr=w2,
                                 env=env, start_new_session=True, **kw)  # fmt: skip
            p.wait()

        return one

    actions = [
        (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDWR, 0),
        (os.POSIX_SPAWN_DUP2, w1, 1),
        (os.POSIX_SPAWN_DUP2, w2, 2),
    ]

    def spawn() -> None:
        pid = os.posix_spawn("/bin/true", ["/bin/true"], env, file_actions=actions, setsid=True)
        os.waitpid(pid, 0)

    cases = {
        "Popen, close_fds, cwd (the runner's)": popen(close_fds=True, cwd="/"),
        "Popen, no close_fds, no cwd": popen(close_fds=False),
        "os.posix_spawn (no cwd, no close_fds)": spawn,
        "Popen, user= (fork: a uid switch)": popen(close_fds=True, user=os.getuid()),
        "Popen, preexec_fn (fork)": popen(close_fds=True, preexec_fn=lambda: None),
    }
    wall: dict[str, float] = {}
    cpu: dict[str, float] = {}
    for _ in range(rounds):  # interleaved, best of rounds
        for name, one in cases.items():
            t0, c0 = time.perf_counter(), time.process_time()
            for _ in range(n):
                one()
            w, c = (time.perf_counter() - t0) / n * 1e3, (time.process_time() - c0) / n * 1e3
            wall[name], cpu[name] = min(wall.get(name, w), w), min(cpu.get(name, c), c)
    for fd in (r1, w1, r2, w2):
        os.close(fd)
    print(f"spawn primitives (/bin/true, {n} spawn+waitpid one after another, best of {rounds}):")
    for name in cases:
        print(f"  {name:38} {wall[name]:6.3f} ms wall  {cpu[name]:6.3f} ms parent CPU")


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=50)
    ap.add_argument("--mib", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=3, help="best of N for each rate")
    ap.add_argument("--serial", type=int, default=300, help="runs per isolation case")
    ap.add_argument("--isolation-only", action="store_true")
    ap.add_argument("--spawn-only", action="store_true", help="Popen against posix_spawn")
    args = ap.parse_args()
    n, c = args.runs, args.concurrency
    if args.spawn_only:
        spawn_primitives(args.serial, args.rounds)
        return
    with tempfile.TemporaryDirectory() as tmp:
        spool = Path(tmp) / "spool"
        if args.isolation_only:
            await isolation_cost(args.serial, args.rounds, spool)
            return
        await runner_rate(200, c, spool, "warm")  # warm caches for both
        raw, pipes, ours, limited, pre = [], [], [], [], []
        limits = Runner(spool / "limited")  # the default rlimits: the dash trampoline
        for k in range(args.rounds):  # interleaved so drift hits all alike
            raw.append(await raw_rate(n, c))
            pipes.append(await raw_pipes_rate(n, c))
            ours.append(await runner_rate(n, c, spool, f"b{k}-"))
            limited.append(await runner_rate(n, c, spool, f"l{k}-", runner=limits))
            pre.append(await runner_rate(n, c, spool, f"p{k}-", runner=limits, env=PREEXEC_ENV))
        print(f"short runs (/bin/true, {n} runs, {c} concurrent, best of {args.rounds}):")
        print(f"  raw asyncio spawn+wait          {max(raw):8.0f} runs/s")
        print(f"  raw asyncio spawn+pipes+wait    {max(pipes):8.0f} runs/s")
        print(f"  runner start+wait (spooled)     {max(ours):8.0f} runs/s")
        print(f"  ratio runner / raw              {max(ours) / max(raw):8.2f}  (target >= 0.8)")
        print(f"  ratio runner / raw with pipes   {max(ours) / max(pipes):8.2f}")
        print(f"  runner, default rlimits (dash)  {max(limited):8.0f} runs/s")
        print(f"  runner, rlimits by preexec_fn   {max(pre):8.0f} runs/s")
        sandbox = Sandbox.probe()
        if sandbox.unavailable is None:
            boxed = Runner(spool / "boxed", sandbox=sandbox)
            rate_boxed = await runner_rate(n // 4 or 1, c, spool, "x-", runner=boxed)
            print(f"  runner, bwrap sandbox (default) {rate_boxed:8.0f} runs/s  ({n // 4} runs)")
        follow = await follow_mbps(args.mib, spool)
        cat = cat_mbps(args.mib)
        print(f"output ({args.mib} MiB of zeros to stdout):")
        print(f"  runner -> spool -> one follower {follow:8.0f} MB/s")
        print(f"  plain `| cat > /dev/null`       {cat:8.0f} MB/s")
        print(f"  ratio                           {follow / cat:8.2f}")
        await isolation_cost(args.serial, args.rounds, spool)


if __name__ == "__main__":
    asyncio.run(main())
