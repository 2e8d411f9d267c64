"""Isolating a run with bubblewrap, and learning its exact exit status back.

A sandboxed run is this chain (the node is the parent of the first; each arrow an exec or
a fork)::

    sh    -- (dash, else bash) ignores SIGTERM, sets the rlimits, joins the cgroup, execs:
    bwrap -- the monitor: new mount, PID and IPC namespaces; exits when the reporter does
      init (PID 1 of the sandbox, bwrap's) -- reaps orphans; dies with the monitor
        perl reporter (PID 2) -- [waits at the gate;] forks; waits; writes the command's
                                 wait status to us
          the command, as the run's uid, with the run's environment and SIGTERM default

Why each piece is there:

- bwrap alone reports a signal death as ``128 + n`` (and its own set-up errors as exit 1),
  so "exit 137" and "killed by SIGKILL" would look alike. The reporter is the command's
  parent: it sends the raw wait status (or the errno of a failed ``chdir``/``exec``)
  through a pipe only the node reads, so results are exactly as without a sandbox.
- The monitor is the run's process group leader and session (``start_new_session``), so
  ``killpg`` reaches everything in the sandbox as before. It ignores SIGTERM (set by bash,
  inherited) so a stop's SIGTERM reaches the command but does not end the monitor, which
  would take the sandbox down at once (``--die-with-parent``) before the command's own
  SIGTERM handling ran. The command gets SIGTERM back to default from the reporter.
- The trampoline is dash where there is one (Debian's /bin/sh): it starts in about a
  third less time than bash (bench/sandbox_flags_bench.py), and both shells' ``ulimit``
  differ only in letters and units (`rlimit_args`).
- Nothing in the chain that runs as root sees the run's environment (``LD_PRELOAD``,
  ``PERL5OPT``...): the shell, bwrap and the reporter get a fixed clean one; the reporter reads
  the run's from a memfd and sets it only in the child, after the uid switch.
- A gated run (``gated=True``, a slot armed ahead of its instant: engine/scheduler.py)
  has the whole chain set up ahead, and its reporter waits at the gate, a pipe from the
  node, before it forks the command: one byte lets it go (`Spawn.go`), so at the instant
  only a fork and an exec remain. End of file (the node closed the gate, or died) ends
  the reporter with "a": the command never ran.
- The uid switch (a root node never runs a command as root unless run_as names root) is
  done by the reporter's child: groups, gid, then uid (saved ids included), checked.
  bwrap itself runs as root without a user namespace, so uids look as on the host. A node
  that is not root runs bwrap in a user namespace instead, as its own user.
"""

from __future__ import annotations

import contextlib
import functools
import os
import resource
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from cronhive.runner import _limits
from cronhive.runner._models import Limits

BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_CLEAN_ENV = {"PATH": BASE_PATH, "LANG": "C.UTF-8", "HOME": "/"}
# Each sandbox gets its own empty tmpfs on these (never the host's, never another run's).
_TMPS = ("/tmp", "/var/tmp")  # noqa: S108 - the point is to replace them
# Already private in every sandbox: nothing under them needs hiding again.
_PRIVATE = (*(Path(p) for p in _TMPS), Path("/dev"), Path("/proc"))

# PID 2 of the sandbox. Arguments: status fd, env fd, gate fd, uid, gid, groups (a,b),
# cwd, argv... ("" = keep, or no gate). Status lines: "r" (up), "a" (the gate closed: not
# started), "e ERRNO WHAT" (could not start), "w STATUS".
REPORTER = r"""
my ($sfd, $efd, $gfd, $uid, $gid, $groups, $cwd) = splice @ARGV, 0, 7;
open(my $st, '>&=', $sfd) or exit 125;
fcntl($st, 2, 1);
select((select($st), $| = 1)[0]);
open(my $ef, '<&=', $efd) or exit 125;
my $envs = do { local $/; <$ef> };
close $ef;
print $st "r\n";
if ($gfd ne '') {
  open(my $g, '<&=', $gfd) or exit 125;
  my $n = sysread($g, my $go, 1);
  close $g;
  if (!$n) { print $st "a\n"; exit 125 }
}
my $pid = fork;
if (!defined $pid) { print $st "e ", $! + 0, " fork\n"; exit 126 }
if (!$pid) {
  $SIG{TERM} = 'DEFAULT';
  if ($gid ne '') {
    my @g = ($gid, $gid, grep { length } split /,/, $groups);
    $) = join ' ', @g;
    $( = $gid;
    if ((split ' ', $))[0] != $gid || (split ' ', $()[0] != $gid) {
      print $st "e ", $! + 0, " group\n"; exit 126;
    }
  }
  if ($uid ne '') {
    ($<, $>) = ($uid, $uid);
    if ($< != $uid || $> != $uid) { print $st "e ", $! + 0, " user\n"; exit 126 }
  }
  if ($cwd ne '' && !chdir $cwd) { print $st "e ", $! + 0, " cwd\n"; exit 126 }
  %ENV = map { split /=/, $_, 2 } grep { length } split /\0/, $envs;
  exec { $ARGV[0] } @ARGV;
  print $st "e ", $! + 0, " exec\n";
  exit 127;
}
waitpid($pid, 0);
my $s = $?;
print $st "w $s\n";
exit($s & 127 ? 128 + ($s & 127) : $s >> 8);
"""

# The trampoline: "$1" is the cgroup.procs file to join ("" for none), then `ulimit`
# arguments up to "--", then the bwrap command line.
TRAMPOLINE = r"""
trap '' TERM
cg=$1; shift
while [ "$1" != -- ]; do ulimit "$1" "$2" || exit 125; shift 2; done; shift
if [ -n "$cg" ]; then echo $$ > "$cg" || exit 125; fi
exec "$@"
"""


@dataclass(frozen=True, kw_only=True)
class Sandbox:
    """How runs are isolated: bubblewrap, hiding ``hide`` (and the runner's spool).

    Every run gets: the host's file system as it is (writable where its uid may write),
    except each path of ``hide`` (a directory becomes an empty tmpfs, a file ``/dev/null``)
    and a private ``/tmp``, ``/var/tmp``, ``/dev`` (minimal devices, own ``/dev/shm``) and
    ``/proc`` of its own PID namespace; its own IPC namespace; the host's network. On a
    root node a run without a user runs as ``run_user``. ``unavailable`` holds why
    bubblewrap cannot be used here (then every run fails with that reason); build one
    with ``Sandbox.probe``.
    """

    hide: tuple[Path, ...] = ()
    run_user: str = "nobody"
    unavailable: str | None = None
    bwrap: str = "bwrap"
    perl: str = "perl"
    bash: str = "bash"  # the trampoline's shell: dash or bash (see `rlimit_args`)

    @classmethod
    def probe(cls, hide: Sequence[Path] = (), run_user: str = "nobody") -> Sandbox:
        """A Sandbox, with ``unavailable`` set when bubblewrap (or perl/bash) is missing or
        cannot create namespaces here (checked by starting one empty sandbox)."""
        names = ("bwrap", "perl", "bash")
        found = {n: shutil.which(n, path=BASE_PATH) for n in names}
        found["bash"] = shutil.which("dash", path=BASE_PATH) or found["bash"]
        bwrap, perl, bash = (found[n] or n for n in names)
        base = cls(hide=tuple(hide), run_user=run_user, bwrap=bwrap, perl=perl, bash=bash)
        missing = [n for n in names if found[n] is None]
        if missing:
            missing = [f"{n} (or dash)" if n == "bash" else n for n in missing]
            why = f"{', '.join(missing)} not found (Debian: apt-get install bubblewrap)"
            return replace(base, unavailable=why)
        failed = _try(base)
        return base if failed is None else replace(base, unavailable=failed)

    def argv(
        self,
        command: Sequence[str],
        *,
        spool_dir: Path,
        status_fd: int,
        env_fd: int,
        switch: tuple[int, int, Sequence[int]] | None,
        cwd: str | None,
        rlimits: Sequence[str],
        cgroup_procs: str | None,
        expose: Sequence[Path] = (),
        gate_fd: int | None = None,
    ) -> list[str]:
        """The command line that runs ``command`` sandboxed (see the module docstring).

        ``switch`` = (uid, gid, groups) the command takes; None keeps the node's.
        ``rlimits``: ``ulimit`` option/value pairs for bash. ``expose``: files the run
        reads although a hidden folder covers them (its cached script, in the data dir):
        each is bound in read-only at ``exposed_path(path)``, in the sandbox's own /tmp
        (bubblewrap would make the folders of its own path 0700, unreadable to the run's
        uid), and arguments naming it are changed to that path.
        """
        shown: list[str] = []
        for path in expose:
            shown += ["--ro-bind", str(path), exposed_path(path)]
        moved = {str(p): exposed_path(p) for p in expose}
        command = [moved.get(arg, arg) for arg in command]
        uid, gid, groups = ("", "", "") if switch is None else _ids(switch)
        return [
            self.bash, "-c", TRAMPOLINE, "sandbox", cgroup_procs or "", *rlimits, "--",
            *_bwrap_args(self, spool_dir), *shown, "--",
            self.perl, "-e", REPORTER, str(status_fd), str(env_fd),
            "" if gate_fd is None else str(gate_fd), uid, gid, groups,
            cwd or "", *command,
        ]  # fmt: skip

    @staticmethod
    def environment() -> dict[str, str]:
        """What bash, bwrap and the reporter see (never the run's: they may be root)."""
        return dict(_CLEAN_ENV)


def exposed_path(path: Path) -> str:
    """Where an exposed file appears inside the sandbox."""
    return f"/tmp/cronhive-{path.name}"  # noqa: S108 - the sandbox's private /tmp


def _ids(switch: tuple[int, int, Sequence[int]]) -> tuple[str, str, str]:
    uid, gid, groups = switch
    return str(uid), str(gid), ",".join(str(g) for g in groups)


@functools.lru_cache(maxsize=8)
def _bwrap_args(sandbox: Sandbox, spool_dir: Path) -> tuple[str, ...]:
    args = [
        sandbox.bwrap, "--die-with-parent", "--unshare-pid", "--unshare-ipc",
        "--bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
    ]  # fmt: skip
    if os.geteuid() != 0:
        args.append("--unshare-user")  # unprivileged: namespaces come with a user namespace
    for tmp in _TMPS:
        if os.path.isdir(tmp):
            args += ["--perms", "1777", "--tmpfs", tmp]
    for path in hidden_paths([*sandbox.hide, spool_dir]):
        if path.is_dir():
            args += ["--perms", "0755", "--tmpfs", str(path)]  # empty, and says so
        else:  # /dev/null (a --ro-bind or --remount-ro of a device is nodev: unreadable)
            args += ["--dev-bind", "/dev/null", str(path)]
    return tuple(args)


def hidden_paths(paths: Sequence[Path]) -> list[Path]:
    """The real paths to hide: existing ones, outside the private folders, outermost only
    (a folder inside a hidden folder is hidden already)."""
    real = sorted({Path(os.path.realpath(p)) for p in paths if os.path.lexists(p)})
    out: list[Path] = []
    for path in real:
        if path == Path("/") or any(path.is_relative_to(p) for p in (*_PRIVATE, *out)):
            continue
        out.append(path)
    return out


def rlimit_args(limits: Limits, *, memory: bool, shell: str = "bash") -> list[str]:
    """``ulimit`` option/value pairs for the trampoline's `shell` (what
    ``_limits.rlimits`` says, in that shell's units: KiB for -v; for -f and -c 1024-byte
    blocks in bash, 512-byte ones in dash, whose process limit is -p, not -u)."""
    table = _ULIMIT_DASH if Path(shell).name == "dash" else _ULIMIT
    out: list[str] = []
    for which, soft, hard in _limits.rlimits(limits, memory=memory):
        option, unit = table[which]
        if soft == hard:
            out += [option, str(soft // unit)]
        else:  # both to the hard value, then the soft one down
            out += [option, str(hard // unit), f"-S{option[1:]}", str(soft // unit)]
    return out


_ULIMIT = {
    resource.RLIMIT_CORE: ("-c", 1024),
    resource.RLIMIT_FSIZE: ("-f", 1024),
    resource.RLIMIT_NOFILE: ("-n", 1),
    resource.RLIMIT_NPROC: ("-u", 1),
    resource.RLIMIT_AS: ("-v", 1024),
    resource.RLIMIT_CPU: ("-t", 1),
}
_ULIMIT_DASH = {
    **_ULIMIT,
    resource.RLIMIT_CORE: ("-c", 512),
    resource.RLIMIT_FSIZE: ("-f", 512),
    resource.RLIMIT_NPROC: ("-p", 1),
}


def _try(sandbox: Sandbox) -> str | None:
    """None if an empty sandbox starts and reports here, else why not."""
    r, w = os.pipe()
    e = os.memfd_create("cronhive-probe")
    try:
        argv = sandbox.argv(
            ["true"],
            spool_dir=Path("/nonexistent"),
            status_fd=w,
            env_fd=e,
            switch=None,
            cwd="/",
            rlimits=[],
            cgroup_procs=None,
        )
        done = subprocess.run(
            argv,
            env=sandbox.environment(),
            pass_fds=(w, e),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=30,
            check=False,
        )
        os.close(w)
        w = -1
        status = os.read(r, 4096)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"bubblewrap could not be started: {exc}"
    finally:
        for fd in (r, w, e):
            if fd >= 0:
                os.close(fd)
    if done.returncode != 0 or not status.endswith(b"w 0\n"):
        text = done.stderr.decode(errors="replace").strip().splitlines()
        return f"bubblewrap cannot make a sandbox here: {text[-1] if text else done.returncode}"
    return None


@dataclass(frozen=True, kw_only=True)
class Report:
    """What the reporter said: up (the sandbox started), the command's raw wait status,
    or the errno and step (``exec``, ``cwd``, ``user``, ``group``, ``fork``) that failed."""

    up: bool = False
    aborted: bool = False  # the gate closed before the command was let go
    status: int | None = None
    errno: int | None = None
    step: str = ""

    @classmethod
    def parse(cls, data: bytes) -> Report:
        up, aborted, status, err, step = False, False, None, None, ""
        for line in data.decode("ascii", errors="replace").splitlines():
            parts = line.split()
            if parts == ["r"]:
                up = True
            elif parts == ["a"]:
                aborted = True
            elif len(parts) == 2 and parts[0] == "w" and parts[1].isdigit():
                status = int(parts[1])
            elif len(parts) == 3 and parts[0] == "e" and parts[1].isdigit() and err is None:
                err, step = int(parts[1]), parts[2]
        return cls(up=up, aborted=aborted, status=status, errno=err, step=step)


@dataclass(kw_only=True)
class Spawn:
    """One sandboxed start: the command line, the fds the child keeps, and ours.

    ``status`` (ours) is the read end of the reporter's pipe; ``child_fds`` are closed by
    ``started()`` once the child has them. ``gate`` (ours, gated runs) is the write end of
    the pipe the reporter waits on.
    """

    argv: list[str]
    env: dict[str, str]
    child_fds: tuple[int, ...]
    status: int
    gate: int | None = None

    def go(self) -> None:
        """Lets the command start (a gated run); once."""
        if self.gate is not None:
            with contextlib.suppress(OSError):  # the chain is gone already: its end says why
                os.write(self.gate, b"g")
            self.close_gate()

    def close_gate(self) -> None:
        """The command will not start: the reporter ends with "a" (or never got there)."""
        if self.gate is not None:
            os.close(self.gate)
            self.gate = None

    def started(self) -> None:
        for fd in self.child_fds:
            os.close(fd)
        self.child_fds = ()

    def abandon(self) -> None:
        self.started()
        self.close_gate()
        os.close(self.status)

    def report(self) -> Report:
        """What the reporter wrote (call once the leader exited: everything is there)."""
        data = b""
        try:
            while chunk := os.read(self.status, 4096):
                data += chunk
                if len(data) > 65536:  # the command cannot write here; never trust size
                    break
        except BlockingIOError:
            pass
        os.close(self.status)
        return Report.parse(data)


def spawn(
    sandbox: Sandbox,
    command: Sequence[str],
    *,
    env: dict[str, str],
    switch: tuple[int, int, Sequence[int]] | None,
    cwd: str | None,
    spool_dir: Path,
    limits: Limits | None,
    cgroup: Path | None,
    expose: Sequence[Path],
    out: Sequence[int],
    gated: bool = False,
) -> tuple[Spawn, subprocess.Popen[bytes]]:
    """Popen the chain for ``command`` (stdout, stderr to ``out``) with the reporter's
    pipe, the environment memfd (and the gate); never a preexec_fn (the fast vfork path):
    the trampoline sets the rlimits and joins the cgroup. ``gated``: the command waits
    for `Spawn.go`."""
    ulimits = rlimit_args(limits, memory=cgroup is None, shell=sandbox.bash) if limits else []
    r, w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
    os.set_blocking(w, True)
    gate: tuple[int, int] | None = None
    try:
        e = os.memfd_create("cronhive-env", os.MFD_CLOEXEC)
        if gated:
            gate = os.pipe2(os.O_CLOEXEC)  # the child gets the read end (pass_fds)
    except OSError:
        for fd in (r, w, *(gate or ())):
            os.close(fd)
        raise
    try:
        data = b"".join(f"{k}={v}\0".encode("utf-8", "surrogateescape") for k, v in env.items())
        view = memoryview(data)
        while view:
            view = view[os.write(e, view) :]
        os.lseek(e, 0, os.SEEK_SET)
        argv = sandbox.argv(
            command,
            spool_dir=spool_dir,
            status_fd=w,
            env_fd=e,
            switch=switch,
            cwd=cwd,
            rlimits=ulimits,
            cgroup_procs=str(cgroup / "cgroup.procs") if cgroup is not None else None,
            expose=expose,
            gate_fd=None if gate is None else gate[0],
        )
    except BaseException:
        for fd in (r, w, e, *(gate or ())):
            os.close(fd)
        raise
    started = Spawn(
        argv=argv,
        env=sandbox.environment(),
        child_fds=(w, e) if gate is None else (w, e, gate[0]),
        status=r,
        gate=None if gate is None else gate[1],
    )
    try:
        popen = subprocess.Popen(
            started.argv,
            stdin=subprocess.DEVNULL,
            stdout=out[0],
            stderr=out[1],
            env=started.env,
            start_new_session=True,
            close_fds=True,
            pass_fds=started.child_fds,
        )
    except BaseException:
        started.abandon()
        raise
    started.started()
    return started, popen


def outcome(report: Report, rc: int, command: Sequence[str], cwd: str | None) -> Outcome:
    """(exit code, signal, error) of a sandboxed run from its report and bwrap's code."""
    if report.errno is not None:
        name = {"exec": command[0], "cwd": cwd}.get(report.step)
        text = os.strerror(report.errno)
        if report.step in ("user", "group", "fork"):
            text = f"cannot {'fork' if report.step == 'fork' else 'switch ' + report.step}: {text}"
        return (
            None,
            None,
            str(OSError(report.errno, text, name) if name else OSError(report.errno, text)),
        )
    if report.aborted:
        return None, None, "not started: its gate was closed before the command was let go"
    if report.status is not None:
        if os.WIFSIGNALED(report.status):
            return None, os.WTERMSIG(report.status), None
        return os.WEXITSTATUS(report.status), None, None
    if rc < 0:  # the monitor itself was killed (a stop's SIGKILL)
        return None, -rc, None
    if not report.up:
        return None, None, f"the sandbox did not start (bwrap exited {rc}; see the run's stderr)"
    if rc > 128:  # the reporter was killed before it could report
        return None, rc - 128, None
    return rc, None, None


Outcome = tuple[int | None, int | None, str | None]
