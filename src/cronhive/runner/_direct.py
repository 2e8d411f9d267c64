"""Starting an unisolated run (``isolation = "none"``), its limits without a preexec_fn.

A ``preexec_fn`` makes CPython fork the whole node instead of vfork-ing it and run Python
in the child: ~2 ms more per run (docs/benchmarks.md, "Isolation cost"). Instead the
child is dash, the sandbox's trampoline shell (``_sandbox.rlimit_args`` gives its
``ulimit`` arguments): Popen switches uid/gid, cwd and session as before, then dash joins
the run's cgroup, sets the rlimits and execs the command. The limits are in force before
the command's first instruction, and the command is the leader: its status is the run's.

dash stands between the run's environment and the command, so it is used only for an
environment it passes on exactly (`carries`): names that are shell identifiers and none
dash sets itself, a PATH it searches as Popen does. Any other takes the preexec_fn.

When the command is never exec'd, dash's EXIT trap writes dash's status to the node
through the child's stdin (dash redirects only fds 0-9; the command gets /dev/null there,
read-write as from Popen). Exec'd, that pipe just closes. dash's own message goes to the
run's stderr. A file of no executable format runs under /bin/sh, as with execvp and in
the sandbox (Popen would fail it with ENOEXEC).
"""

from __future__ import annotations

import errno
import functools
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cronhive.runner import _limits
from cronhive.runner._models import Limits
from cronhive.runner._sandbox import BASE_PATH, rlimit_args
from cronhive.runner._spec import Identity

# $1: the cgroup.procs file to join ("" for none), then `ulimit` pairs up to "--", then
# the command. No variables: the run's environment is dash's, any name could be in it.
TRAMPOLINE = r"""trap 'echo $? >&0' EXIT
[ -z "$1" ] || echo $$ > "$1" || exit 124
shift
while [ "$1" != -- ]; do ulimit "$1" "$2" || exit 125; shift 2; done
shift
unset PWD
exec "$@" <>/dev/null
"""
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# What dash 0.5 sets or resets on its own if imported (tests/runner/test_direct.py).
_DASH_OWNED = frozenset({"PWD", "OLDPWD", "IFS", "PPID", "OPTIND", "LINENO", "PS1", "PS2", "PS4"})


@functools.cache
def dash() -> str | None:
    return shutil.which("dash", path=BASE_PATH)


def carries(env: Mapping[str, str]) -> bool:
    """Whether dash passes ``env`` on exactly and looks the command up as Popen would
    (an empty PATH, or one with dash's ``%`` entries, it would not)."""
    path = env.get("PATH")
    if not path or "%" in path:
        return False
    return all(_NAME.fullmatch(name) and name not in _DASH_OWNED for name in env)


@dataclass(kw_only=True)
class Direct:
    """One unisolated start; ``status`` is ours (the trampoline's EXIT trap), or -1."""

    popen: subprocess.Popen[bytes]
    status: int = -1

    def settle(self) -> bytes:
        """What the EXIT trap wrote: b"" if dash exec'd the command (or was killed)."""
        try:
            return os.read(self.status, 64).strip()
        except BlockingIOError:
            return b""
        finally:
            os.close(self.status)
            self.status = -1


_ERRNOS = {os.strerror(n): n for n in sorted(errno.errorcode, reverse=True)}


def failure(said: bytes, dropped: bytes, name: str) -> str:
    """The run's error when the trampoline exited with ``said`` before its exec, having
    written ``dropped`` (its own message) to the run's pipes."""
    code = int(said) if said.isdigit() else -1
    message = dropped.decode(errors="replace").strip().rsplit("\n", 1)[-1]
    if code in (126, 127):  # dash's codes for EACCES, and ENOENT or ENOTDIR
        num: int | None = errno.EACCES if code == 126 else errno.ENOENT
    else:  # another errno: dash says it as strerror does, after the name
        num = _ERRNOS.get(message.rsplit(": ", 1)[-1]) if code == 2 else None
    if num is not None:
        return str(OSError(num, os.strerror(num), name))
    what = {124: "join the run's cgroup", 125: "set the run's rlimits"}.get(code)
    return f"could not {what or 'start the run'}: {message or f'exit {code}'}"


def spawn(
    argv: list[str],
    env: dict[str, str],
    ident: Identity,
    cwd: str | None,
    out: Sequence[int],
    limits: Limits | None,
    cgroup: Path | None,
) -> Direct:
    """Popen ``argv`` (stdout, stderr to ``out``) with ``limits``: through dash, or with
    a preexec_fn when dash cannot carry ``env``. OSError/SubprocessError if it failed."""
    shell = dash()
    if limits is None or shell is None or not carries(env):
        return Direct(popen=_popen(argv, env, ident, cwd, out, _limits.preexec(limits, cgroup)))
    ulimits = rlimit_args(limits, memory=cgroup is None, shell=shell)
    if not ulimits and cgroup is None:  # nothing to apply
        return Direct(popen=_popen(argv, env, ident, cwd, out, None))
    procs = str(cgroup / "cgroup.procs") if cgroup is not None else ""
    r, w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
    try:
        os.set_blocking(w, True)
        line = [shell, "-c", TRAMPOLINE, "cronhive", procs, *ulimits, "--", *argv]
        popen = _popen(line, env, ident, cwd, out, None, stdin=w)
    except BaseException:
        os.close(r)
        raise
    finally:
        os.close(w)
    return Direct(popen=popen, status=r)


def _popen(
    argv: list[str],
    env: dict[str, str],
    ident: Identity,
    cwd: str | None,
    out: Sequence[int],
    preexec: Callable[[], None] | None,
    stdin: int = subprocess.DEVNULL,
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        argv,
        stdin=stdin,
        stdout=out[0],
        stderr=out[1],
        cwd=cwd,
        env=env,
        start_new_session=True,
        close_fds=True,
        user=ident.uid,
        group=ident.gid,
        extra_groups=ident.extra_groups,
        preexec_fn=preexec,
    )
