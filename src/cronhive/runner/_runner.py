"""The Runner: starts runs, finds them by id, stops them all, forgets them."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from cronhive.errors import Conflict, NotFound
from cronhive.runner import _spec
from cronhive.runner._handle import ExitListener, RunHandle
from cronhive.runner._limits import CGROUP_ROOT, CgroupParent
from cronhive.runner._models import DEFAULT_LIMITS, Limits, OutputSink, RunResult, RunSpec
from cronhive.runner._sandbox import Sandbox


class Runner:
    """Runs processes on this node and keeps their output under ``spool_dir``.

    ``spool_dir`` is created if needed and set to mode 0700; each run writes
    ``<run_id>.stdout`` and ``<run_id>.stderr`` (0600) there. ``default_grace`` is the
    SIGTERM->SIGKILL delay when neither the spec nor ``stop()`` gives one.
    ``drain_timeout``: after the leader exited, how long output is still awaited from a
    process that escaped the run's group yet holds its pipes.

    ``sandbox``: run every command isolated (see ``Sandbox``; None: as the node's own
    processes). ``default_limits`` apply to every run, a spec's ``limits`` override them
    field by field (None: only what a spec asks).
    """

    def __init__(
        self,
        spool_dir: Path,
        *,
        default_grace: float = 10.0,
        drain_timeout: float = 2.0,
        cgroup_root: Path | None = CGROUP_ROOT,
        sandbox: Sandbox | None = None,
        default_limits: Limits | None = DEFAULT_LIMITS,
        on_reaped: ExitListener | None = None,
    ) -> None:
        self.spool_dir = Path(spool_dir)
        self.spool_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.spool_dir, 0o700)
        self.default_grace = default_grace
        self.drain_timeout = drain_timeout
        self._cgroups = CgroupParent(cgroup_root)  # None: never use cgroups
        self.sandbox = sandbox
        self.default_limits = default_limits
        self._runs: dict[str, RunHandle] = {}
        self.on_reaped = on_reaped  # see ExitListener

    @property
    def cgroups_usable(self) -> bool:
        """Whether limits will be applied with cgroup v2 (else with rlimits)."""
        return self._cgroups.usable

    @property
    def cgroup_controllers(self) -> frozenset[str]:
        """The cgroup v2 controllers each limited run's group gets (memory, pids, cpu)."""
        return self._cgroups.controllers if self._cgroups.usable else frozenset()

    async def start(
        self, spec: RunSpec, sink: OutputSink | None = None, *, gated: bool = False
    ) -> RunHandle:
        """Start ``spec``; return its handle once the process is spawned (or failed).

        ``gated``: in a sandbox, everything is set up but the command waits for
        ``handle.go()`` (``handle.abort()``: it never starts); ``handle.gated`` says
        whether it does wait (unisolated runs never do: they start at once).

        Never raises for an OS error of the child (missing executable, bad cwd, EACCES,
        unknown user, not root for user/group, a sandbox that cannot be made here): the
        handle ends FAILED with the error text. Raises InvalidInput for a malformed spec
        and Conflict if this runner already holds a run with that id (discard it first).
        """
        _spec.validate(spec)
        if spec.run_id in self._runs:
            raise Conflict(f"run {spec.run_id!r} exists on this runner")
        handle = RunHandle(
            spec, self.spool_dir, self.default_grace, self.drain_timeout, sink, self.on_reaped
        )
        self._runs[spec.run_id] = handle
        sandbox = self.sandbox
        if sandbox is not None and sandbox.unavailable is not None:
            handle.fail(
                f"runs are isolated on this node but {sandbox.unavailable}; the operator may "
                'set isolation = "none" to run them unisolated'
            )
            return handle
        try:
            ident = _spec.identity(spec, default_user=sandbox.run_user if sandbox else None)
        except _spec.IdentityError as exc:
            handle.fail(str(exc))
            return handle
        env = _spec.environment(spec, ident)
        limits = self.default_limits.merged(spec.limits) if self.default_limits else spec.limits
        handle.launch(
            _spec.command(spec),
            env,
            ident,
            self._cgroups,
            limits=limits,
            sandbox=sandbox,
            spool_dir=self.spool_dir,
            gated=gated,
        )
        return handle

    def get(self, run_id: str) -> RunHandle:
        """The run with this id (running or finished, until discarded); else NotFound."""
        try:
            return self._runs[run_id]
        except KeyError:
            raise NotFound(f"no run {run_id!r} on this runner") from None

    def handles(self) -> list[RunHandle]:
        """Every run this runner holds, running or finished."""
        return list(self._runs.values())

    async def stop_all(self, grace: float | None = None) -> list[RunResult]:
        """Stop every running run concurrently; return their results."""
        running = [h for h in self._runs.values() if h.result is None]
        return list(await asyncio.gather(*(h.stop(grace) for h in running)))

    def discard(self, run_id: str) -> None:
        """Forget a finished run and delete its spool files. NotFound; Conflict if running.

        Followers already reading keep their bytes; new followers get NotFound.
        """
        handle = self.get(run_id)
        if handle.result is None:
            raise Conflict(f"run {run_id!r} is still running; stop it first")
        handle.discard()
        del self._runs[run_id]
