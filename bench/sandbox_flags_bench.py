"""What each piece of the sandbox chain costs: milliseconds per `/bin/true`, serial.

    .venv/bin/python bench/sandbox_flags_bench.py [--serial 300] [--rounds 3]

Each case is a command line run to completion one after another (subprocess, the vfork
path), best of `--rounds` interleaved rounds. The bwrap cases add one flag at a time to
`bwrap --bind / /`, in the order the runner passes them, so each row's increase over the
previous one is that flag's cost; the last rows are the runner's whole chain (bash
trampoline + bwrap + perl reporter), with bash and with dash as the trampoline. CPU is
the children's user+system time (steadier than wall time on a shared machine; not shown
where a PID namespace keeps the processes from being counted).
Needs root or unprivileged user namespaces (as the runner's sandbox does).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import time
from pathlib import Path

from cronhive.runner._sandbox import REPORTER, TRAMPOLINE, Sandbox

TRUE = shutil.which("true") or "/bin/true"


def _cases(spool: Path) -> dict[str, list[str]]:
    sandbox = Sandbox.probe(hide=[spool])
    if sandbox.unavailable:
        raise SystemExit(f"bubblewrap unusable here: {sandbox.unavailable}")
    bw = [sandbox.bwrap]
    if os.geteuid() != 0:
        bw.append("--unshare-user")
    steps: list[tuple[str, list[str]]] = [
        ("bwrap --bind / /", ["--bind", "/", "/"]),
        ("+ --die-with-parent", ["--die-with-parent"]),
        ("+ --unshare-ipc", ["--unshare-ipc"]),
        ("+ --unshare-pid", ["--unshare-pid"]),
        ("+ --proc /proc", ["--proc", "/proc"]),
        ("+ --dev /dev", ["--dev", "/dev"]),
        ("+ --tmpfs /tmp /var/tmp", ["--tmpfs", "/tmp", "--tmpfs", "/var/tmp"]),
        ("+ hide the spool dir (--tmpfs)", ["--tmpfs", str(spool)]),
    ]
    cases: dict[str, list[str]] = {
        "/bin/true": [TRUE],
        "bash -c trampoline true": ["bash", "-c", TRAMPOLINE, "x", "", "--", TRUE],
        "dash -c trampoline true": ["dash", "-c", TRAMPOLINE, "x", "", "--", TRUE],
        "perl -e '' (reporter start)": [sandbox.perl, "-e", ""],
    }
    flags: list[str] = []
    for name, more in steps:
        flags += more
        cases[name] = [*bw, *flags, TRUE]
    cases["(reference) + --unshare-net"] = [*bw, *flags, "--unshare-net", TRUE]
    cases["(reference) --dev-bind /dev /dev instead of --dev"] = [
        *bw,
        *(f if f != "--dev" else "--dev-bind" for f in flags[: flags.index("/dev")]),
        "/dev",
        "/dev",
        *flags[flags.index("/dev") + 1 :],
        TRUE,
    ]
    cases["bwrap (runner's flags) + perl reporter"] = [
        *bw, *flags, "--", sandbox.perl, "-e", REPORTER, "1", "0", "", "", "", "", "", TRUE,
    ]  # fmt: skip
    for shell in ("bash", "dash"):
        cases[f"whole chain: {shell} + bwrap + perl reporter"] = [
            shell, "-c", TRAMPOLINE, "sandbox", "", "--", *bw, *flags, "--",
            sandbox.perl, "-e", REPORTER, "1", "0", "", "", "", "", "", TRUE,
        ]  # fmt: skip
    return cases


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _serial(argv: list[str], n: int) -> tuple[float, float]:
    """(wall, CPU of the children) milliseconds per run. CPU time is the steadier figure
    on a shared machine: another process's load stretches the wall time, not this."""
    t, cpu = time.perf_counter(), _children_cpu()
    for _ in range(n):
        subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, check=True)
    return (time.perf_counter() - t) * 1000 / n, (_children_cpu() - cpu) * 1000 / n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--serial", type=int, default=300, help="runs per case and round")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    spool = Path("/tmp/cronhive-flags-bench-spool")
    spool.mkdir(exist_ok=True)
    cases = _cases(spool)
    best: dict[str, tuple[float, float]] = {}
    for _ in range(args.rounds):
        for name, argv in cases.items():
            wall, cpu = _serial(argv, args.serial)
            old = best.get(name, (wall, cpu))
            best[name] = (min(old[0], wall), min(old[1], cpu))
    base = best["/bin/true"]
    print(f"sandbox pieces (/bin/true, {args.serial} serial, best of {args.rounds}):")
    print(f"  {'':52} {'wall':>9}  {'x':>5}  {'CPU':>8}  {'x':>5}  wall step")
    previous = None
    for name, (wall, cpu) in best.items():
        step = f"{wall - previous:+.2f}" if previous is not None and name.startswith("+") else ""
        # In a PID namespace the sandbox's init is nobody's waited-for child: its CPU
        # (and the command's) never reaches RUSAGE_CHILDREN, so the figure would lie.
        counted = "--unshare-pid" not in cases[name]
        used = f"{cpu:5.2f} ms  {cpu / base[1]:5.1f}" if counted else f"{'-':>8}  {'-':>5}"
        print(f"  {name:52} {wall:6.2f} ms  {wall / base[0]:5.1f}  {used}  {step}")
        if name.startswith(("bwrap --bind", "+")):
            previous = wall


if __name__ == "__main__":
    main()
