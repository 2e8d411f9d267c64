"""The retry decision, made inside the store's transaction when a run ends or is lost."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from cronhive.model import RETRYABLE_STATES, Execution, RunState

_rng: random.Random = random.SystemRandom()

# A run lost with its node this many times in a row is not tried again: it may be what
# kills its nodes.
MAX_LOST_IN_A_ROW = 3


def decide_retry(execution: Execution) -> datetime | None:
    """When the next attempt of a run that just ended may start, or None for no retry.

    A lost run (its node died, froze, was fenced or shut down) is retried at once,
    whatever the job's retry policy: a dead node is not the job's failure. Failed and
    timed-out runs are retried while the job's policy allows, with its backoff; lost
    attempts do not count against it. A run someone stopped, or one that succeeded,
    never is.
    """
    if execution.state not in RETRYABLE_STATES or execution.stop_requested:
        return None
    ended = execution.finished_at or execution.not_before
    if execution.state is RunState.LOST:
        return ended if execution.lost_streak + 1 < MAX_LOST_IN_A_ROW else None
    attempt = execution.failures + 2  # the job's own retry number, 2 = first retry
    if not execution.retry.allows(attempt):
        return None
    return ended + timedelta(seconds=execution.retry.delay_before(attempt, _rng))
