"""A started run: its process, its pipes, its state, and stopping it.

Everything is driven by event-loop callbacks on file descriptors (a pidfd for the exit,
the two pipes for output): no thread and no task per run, unless the run has a sink
(one task that feeds it) or is being stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import signal
import subprocess
from collections import deque
from collections.abc import AsyncGenerator, Callable
from datetime import UTC, datetime
from pathlib import Path

from cronhive.errors import InvalidInput
from cronhive.runner import _direct, _limits, _sandbox
from cronhive.runner._models import Chunk, Limits, OutputSink, RunResult, RunSpec, RunState, Stream
from cronhive.runner._output import SpoolStream
from cronhive.runner._sandbox import Sandbox
from cronhive.runner._spec import Identity

log = logging.getLogger("cronhive.runner")

READ_SIZE = 1 << 18  # one read(2) of a pipe, and so one write(2) of the spool
PIPE_SIZE = 1 << 18  # asked of the kernel for stdout (fewer wake-ups on big output)
_ROOT = os.geteuid() == 0
SINK_HIGH = 4 << 20  # queued bytes for a slow sink before the pipes are paused
SINK_LOW = 1 << 20


# (handle, state, code, signal, error) the moment a leader is reaped (engine/_supervisor.py)
ExitListener = Callable[["RunHandle", RunState, int | None, int | None, str | None], None]


class RunHandle:
    """One run. Obtain it from ``Runner.start``; all methods run on the runner's loop.

    ``state`` is RUNNING until ``result`` is set; both change together, once, when the
    leader exited, both streams are complete and the sink (if any) is closed.
    """

    def __init__(
        self,
        spec: RunSpec,
        spool: Path,
        grace: float,
        drain_timeout: float,
        sink: OutputSink | None = None,
        on_reaped: ExitListener | None = None,
    ) -> None:
        self.spec = spec
        self._on_reaped = on_reaped
        self.run_id = spec.run_id
        self.state = RunState.RUNNING
        self.pid: int | None = None
        self.gated = False  # spawned, its command waiting for `go`
        self.result: RunResult | None = None
        self.started_at = datetime.now(UTC)
        self.limits_applied: str | None = None
        self.output_capped = False  # output went past spec.output_cap (and was dropped)
        self._written = {Stream.STDOUT: 0, Stream.STDERR: 0}  # read from the pipes
        self._grace = spec.grace if spec.grace is not None else grace
        self._drain_timeout = drain_timeout
        self._loop = asyncio.get_running_loop()
        self._out = {
            Stream.STDOUT: SpoolStream(spool / f"{spec.run_id}.stdout"),
            Stream.STDERR: SpoolStream(spool / f"{spec.run_id}.stderr"),
        }
        self._pipes: dict[Stream, int] = {}
        self._popen: subprocess.Popen[bytes] | None = None
        self._pidfd: int | None = None
        self._cgroup: Path | None = None
        self._spawn: _sandbox.Spawn | None = None
        self._direct: _direct.Direct | None = None  # unisolated: did dash exec it?
        self._report: _sandbox.Report | None = None
        self._command: list[str] = list(spec.argv)
        self._exited = self._loop.create_future()  # set once the leader is reaped
        self._done: asyncio.Future[RunResult] = self._loop.create_future()
        self._finished_at: datetime | None = None
        self._error: str | None = None
        self._stop_reason: RunState | None = None
        self._stopper: asyncio.Task[None] | None = None
        self._timers: list[asyncio.TimerHandle] = []
        self._seq = 0
        self._sink = sink
        self._sink_q: deque[Chunk] = deque()
        self._sink_bytes = 0
        self._sink_wake: asyncio.Future[None] | None = None
        self._sink_task: asyncio.Task[None] | None = None
        if sink is not None:
            self._sink_task = self._loop.create_task(self._pump(sink))
        self._paused = False

    # -- public ------------------------------------------------------------------------

    async def wait(self) -> RunResult:
        """Wait for the end of the run (its output complete, its sink closed)."""
        return await asyncio.shield(self._done)

    async def stop(self, grace: float | None = None) -> RunResult:
        """Stop the run: SIGTERM to the whole tree, ``grace`` seconds, then SIGKILL.

        The grace ends early when the leader exits; whatever of the tree is left then
        gets SIGKILL. State STOPPED unless the run had already ended (its own result is
        returned; what still carries its CRONHIVE_RUN_ID, a daemon that left with setsid,
        gets SIGKILL). A second call waits for the first stop. Never raises for OS errors.
        """
        if self._done.done():
            await _limits.kill_marked(self.run_id)
        self._request_stop(RunState.STOPPED, self._grace if grace is None else grace)
        return await self.wait()

    def follow(self, stream: Stream, offset: int = 0) -> AsyncGenerator[bytes, None]:
        """Bytes of ``stream`` from ``offset`` on: live while running, from the spool file.

        Ends once the stream is complete (its pipe closed, at the latest when the run
        ended) and every byte was yielded. Any number of followers, at any time; a slow
        or abandoned follower never slows the run. InvalidInput for a bad offset or
        stream; NotFound (when iterated) if the run was discarded.
        """
        if not isinstance(offset, int) or offset < 0:
            raise InvalidInput("offset must be an int >= 0", field="offset")
        try:
            out = self._out[Stream(stream)]
        except ValueError:
            raise InvalidInput(f"no stream {stream!r}", field="stream") from None
        return out.follow(offset)

    def size(self, stream: Stream) -> int:
        """Bytes of ``stream`` in the spool so far."""
        return self._out[Stream(stream)].size

    def go(self) -> None:
        """Lets a gated run's command start (``Runner.start(gated=True)``); its timeout
        counts from now. Nothing for a run not (or no longer) gated."""
        if not self.gated:
            return
        self.gated = False
        self.started_at = datetime.now(UTC)
        if self._spawn is not None:
            self._spawn.go()
        if self.spec.timeout is not None and not self._exited.done():
            self._timers.append(self._loop.call_later(self.spec.timeout, self._on_timeout))

    def abort(self) -> None:
        """A gated run's command will never start: its chain ends without it."""
        if self.gated:
            self.gated = False
            if self._spawn is not None:
                self._spawn.close_gate()

    # -- start (called by Runner) ------------------------------------------------------

    def fail(self, error: str) -> None:
        """End a run that could not start: FAILED with ``error``."""
        self._error = error
        self._finished_at = datetime.now(UTC)
        for out in self._out.values():
            out.close()
        self._exited.set_result(None)
        self._output_done()

    def launch(
        self,
        argv: list[str],
        env: dict[str, str],
        ident: Identity,
        cgroups: _limits.CgroupParent,
        *,
        limits: Limits | None = None,
        sandbox: Sandbox | None = None,
        spool_dir: Path | None = None,
        gated: bool = False,
    ) -> None:
        """Spawn the process (in ``sandbox`` if given) with ``limits`` (the spec's merged
        into the runner's defaults) and wire its fds to the loop. OS errors end the run
        FAILED. ``gated`` (sandboxed only): the command waits for `go`."""
        spec = self.spec
        read_fds: list[int] = []
        write_fds: list[int] = []
        self._command = argv
        try:
            for _ in range(2):
                r, w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
                read_fds.append(r)
                write_fds.append(w)
            os.set_blocking(write_fds[0], True)
            os.set_blocking(write_fds[1], True)
            if _ROOT:  # others pay for big pipes in pipe-user-pages-soft
                with contextlib.suppress(OSError):
                    fcntl.fcntl(read_fds[0], fcntl.F_SETPIPE_SZ, PIPE_SIZE)
            if spec.limits is not None:
                self._cgroup = cgroups.try_create(self.run_id, limits or spec.limits)
                self.limits_applied = "cgroup" if self._cgroup is not None else "rlimit"
            if sandbox is None:
                self._direct = _direct.spawn(
                    argv, env, ident, spec.cwd, write_fds, limits, self._cgroup
                )
                self._popen = self._direct.popen
            else:
                self._spawn, self._popen = _sandbox.spawn(
                    sandbox, argv, env=env, switch=ident.switch(), cwd=spec.cwd,
                    spool_dir=spool_dir or Path("/nonexistent"), limits=limits,
                    cgroup=self._cgroup, expose=spec.expose, out=write_fds, gated=gated,
                )  # fmt: skip
        except (OSError, subprocess.SubprocessError) as exc:
            for fd in read_fds:
                os.close(fd)
            self._remove_cgroup()
            self.fail(str(exc))
            return
        finally:
            for fd in write_fds:
                os.close(fd)
        assert self._popen is not None
        self.pid = self._popen.pid
        self._pipes = {Stream.STDOUT: read_fds[0], Stream.STDERR: read_fds[1]}
        if self._direct is not None and self._direct.status >= 0:
            self._loop.add_reader(self._direct.status, self._on_exec)  # pipes wait for it
        else:
            self._watch_pipes()
        self._watch_exit()
        self.gated = gated and self._spawn is not None
        if spec.timeout is not None and not self.gated:
            self._timers.append(self._loop.call_later(spec.timeout, self._on_timeout))

    def _watch_pipes(self) -> None:
        for stream, fd in self._pipes.items():
            self._loop.add_reader(fd, self._on_readable, stream)

    def _on_exec(self) -> None:
        """The trampoline exec'd the command (its status pipe closed empty), or it failed:
        then all in the pipes is dash's own message, never the run's output."""
        assert self._direct is not None
        self._loop.remove_reader(self._direct.status)
        said = self._direct.settle()
        if not said:
            self._watch_pipes()
            return
        dropped = b""
        for stream in list(self._pipes):
            with contextlib.suppress(OSError):
                dropped += os.read(self._pipes[stream], 4096)
            self._close_pipe(stream)
        self._error = _direct.failure(said, dropped, self._command[0])

    def _watch_exit(self) -> None:
        assert self.pid is not None
        try:
            self._pidfd = os.pidfd_open(self.pid)
        except OSError:  # no pidfd (old kernel): a thread waits, the rare slow path
            popen = self._popen
            assert popen is not None
            fut = self._loop.run_in_executor(None, popen.wait)
            fut.add_done_callback(lambda _: self._on_exit())
            return
        self._loop.add_reader(self._pidfd, self._on_exit)

    # -- output ------------------------------------------------------------------------

    def _on_readable(self, stream: Stream) -> None:
        fd = self._pipes[stream]
        try:
            data = os.read(fd, READ_SIZE)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            self._append(stream, data)
        else:
            self._close_pipe(stream)

    def _append(self, stream: Stream, data: bytes) -> None:
        self._written[stream] += len(data)
        cap = self.spec.output_cap
        if cap is not None:  # both streams together; beyond it, read and dropped
            room = cap - self._out[Stream.STDOUT].size - self._out[Stream.STDERR].size
            if len(data) > room:
                self.output_capped = True
                if room <= 0:
                    return
                data = data[:room]
        out = self._out[stream]
        offset = out.size
        out.append(data)
        if self._sink is not None:
            self._sink_q.append(Chunk(stream=stream, offset=offset, seq=self._seq, data=data))
            self._sink_bytes += len(data)
            self._wake_pump()
            if self._sink_bytes > SINK_HIGH and not self._paused:
                self._paused = True
                for fd in self._pipes.values():
                    self._loop.remove_reader(fd)
        self._seq += 1

    def _close_pipe(self, stream: Stream) -> None:
        fd = self._pipes.pop(stream)
        self._loop.remove_reader(fd)
        os.close(fd)
        self._out[stream].close()
        if not self._pipes and self._exited.done():
            self._output_done()

    def _drain_now(self) -> None:
        """The leader is gone but something outside our reach holds a pipe: take what
        is buffered and stop reading, so the run can end."""
        if self._paused:
            self._timers.append(self._loop.call_later(0.1, self._drain_now))
            return
        for stream in list(self._pipes):
            for _ in range(64):
                try:
                    data = os.read(self._pipes[stream], READ_SIZE)
                except OSError:
                    break
                if not data:
                    break
                self._append(stream, data)
            if stream in self._pipes:
                self._close_pipe(stream)

    # -- sink --------------------------------------------------------------------------

    def _wake_pump(self) -> None:
        if self._sink_wake is not None and not self._sink_wake.done():
            self._sink_wake.set_result(None)

    async def _pump(self, sink: OutputSink) -> None:
        q = self._sink_q
        alive = True
        try:
            while True:
                while q:
                    chunk = q.popleft()
                    self._sink_bytes -= len(chunk.data)
                    if self._paused and self._sink_bytes < SINK_LOW:
                        self._paused = False
                        for stream, fd in self._pipes.items():
                            self._loop.add_reader(fd, self._on_readable, stream)
                    if alive:
                        try:
                            await sink.write(chunk)
                        except Exception:
                            log.exception("sink of run %s failed; detached", self.run_id)
                            alive = False
                if self._out[Stream.STDOUT].closed and self._out[Stream.STDERR].closed:
                    break
                self._sink_wake = self._loop.create_future()
                await self._sink_wake
        finally:
            with contextlib.suppress(Exception):
                await sink.close()

    # -- exit and stop -----------------------------------------------------------------

    def _on_exit(self) -> None:
        if self._exited.done():
            return
        if self._direct is not None and self._direct.status >= 0:
            self._on_exec()  # the exit came first; the status pipe says it all by now
        if self._pidfd is not None:
            self._loop.remove_reader(self._pidfd)
        # The leader is a zombie, so its group id cannot be reused yet: kill what is
        # left of the group (the run owns its tree), then reap.
        self._signal_group(signal.SIGKILL)
        popen = self._popen
        assert popen is not None
        if popen.poll() is None:  # pidfd readable only at exit; be safe anyway
            popen.wait()
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None
        if self._spawn is not None:  # the reporter wrote before the leader could exit
            self._report = self._spawn.report()
            self._spawn = None
        self._finished_at = datetime.now(UTC)
        self._exited.set_result(None)
        if self._on_reaped is not None and self.pid is not None:
            # At once, in this callback: the exit status lives only here from now on.
            try:
                self._on_reaped(self, *self._status())
            except Exception:
                log.exception("exit listener of run %s failed", self.run_id)
        if self._cgroup is not None:
            _limits.CgroupParent.kill(self._cgroup)
        if self._pipes:
            self._timers.append(self._loop.call_later(self._drain_timeout, self._drain_now))
        else:
            self._output_done()

    def _status(self) -> tuple[RunState, int | None, int | None, str | None]:
        """(state, exit code, signal, error) of the reaped leader and sandbox report."""
        rc = self._popen.returncode if self._popen is not None else None
        code = rc if rc is not None and rc >= 0 else None
        sig = -rc if rc is not None and rc < 0 else None
        error = self._error
        if error is not None and self._report is None:  # never started, or dash's exec failed
            code = sig = None
        if self._report is not None and rc is not None:
            code, sig, said = _sandbox.outcome(self._report, rc, self._command, self.spec.cwd)
            error = error or said
        if self._stop_reason is not None:
            state = self._stop_reason
        elif code == 0 and error is None:
            state = RunState.SUCCEEDED
        else:
            state = RunState.FAILED
        return state, code, sig, error

    def _output_done(self) -> None:
        if self._sink_task is not None and not self._sink_task.done():
            self._wake_pump()
            self._sink_task.add_done_callback(lambda _: self._complete())
        else:
            self._complete()

    def _complete(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        self._remove_cgroup()
        state, code, sig, self._error = self._status()
        self.result = RunResult(
            state=state,
            exit_code=code,
            signal=sig,
            error=self._error,
            started_at=self.started_at,
            finished_at=self._finished_at or datetime.now(UTC),
            limits_applied=self.limits_applied,
            stdout_bytes=self._written[Stream.STDOUT],
            stderr_bytes=self._written[Stream.STDERR],
            output_capped=self.output_capped,
        )
        self.state = state
        self._done.set_result(self.result)

    def _on_timeout(self) -> None:
        self._request_stop(RunState.TIMED_OUT, self._grace)

    def _request_stop(self, reason: RunState, grace: float) -> None:
        if self._stopper is not None or self._done.done():
            return
        if not self._exited.done():
            self._stop_reason = reason
        self._stopper = self._loop.create_task(self._stop(grace))

    async def _stop(self, grace: float) -> None:
        if not self._exited.done():
            self._signal_tree(signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._exited), grace)
        killed = self._signal_tree(signal.SIGKILL)
        await self._exited
        await _limits.wait_gone(killed, within=1.0)
        if self._pipes:  # only escaped processes hold them now; do not wait for EOF
            self._drain_now()

    def _signal_group(self, sig: int) -> None:
        if self.pid is not None and not self._exited.done():
            with contextlib.suppress(OSError):
                os.killpg(self.pid, sig)

    def _signal_tree(self, sig: int) -> set[int]:
        """Signal the group, then all else found of the run; return the PIDs found."""
        self._signal_group(sig)
        if self._cgroup is not None and sig == signal.SIGKILL:
            _limits.CgroupParent.kill(self._cgroup)
        if self.pid is None:
            return set()
        found = _limits.tagged_pids(self.run_id, self.pid)
        for pid in found:
            with contextlib.suppress(OSError):
                os.kill(pid, sig)
        return found

    def _remove_cgroup(self) -> None:
        if self._cgroup is not None:
            _limits.CgroupParent.remove(self._cgroup)

    def discard(self) -> None:
        """Forget the output (called by Runner.discard on a finished run)."""
        for out in self._out.values():
            out.discarded = True
            with contextlib.suppress(FileNotFoundError):
                out.path.unlink()
