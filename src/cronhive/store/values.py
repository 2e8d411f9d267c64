"""The values the `Store` interface takes and gives besides the model's (cronhive.model):
who may see what, claim caps, usage, a run's end, a wake-up, a stored script."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from uuid import UUID

from cronhive.model import Execution, Outcome, OutputChunk

Visibility = frozenset[str] | None

# How long a reaped or departed node stays listed as down.
DOWN_RETENTION = timedelta(hours=24)

# Computes when the retry of a run that ended in `Execution.state` may start, or None for
# no retry. Called inside the store's transaction, so it must be pure and quick.
RetryDecider = Callable[[Execution], datetime | None]


@dataclass(frozen=True, kw_only=True)
class Notification:
    """A wake-up from any node. `topic` is one of: `jobs` (a job changed: re-plan the
    sleep), `runs` (an execution was queued: try claiming), `stop` (key = execution id),
    `output` (key = execution id), `events`."""

    topic: str
    key: str = ""


@dataclass(frozen=True, kw_only=True)
class RunCaps:
    """Per-owner caps on running runs, for a claim: `owners` maps an owner
    (``user:x``/``group:y``) to its cap, any other owner has `default`; None is no cap.
    An owner at its cap is passed over by the claim; the others proceed."""

    default: int | None = None
    owners: Mapping[str, int | None] = field(default_factory=dict)

    def cap_of(self, owner: str) -> int | None:
        return self.owners.get(owner, self.default)


@dataclass(frozen=True, kw_only=True)
class Usage:
    """What one owner holds now (for quotas): its jobs, and its queued and running runs."""

    jobs: int
    queued: int
    running: int


@dataclass(frozen=True, kw_only=True)
class Finish:
    """How one run ended, for `Store.finish_many`; `chunks` is the last of its output,
    stored in the same transaction as the end (both or neither): a short run costs one
    write, and a reader that sees the end sees every byte."""

    execution_id: UUID
    outcome: Outcome
    chunks: Sequence[OutputChunk] = ()


@dataclass(frozen=True, kw_only=True)
class ScriptRecord:
    """A script body someone stored (the body is in the blob store under its digest)."""

    digest: str
    owner: str
    name: str
    size: int
