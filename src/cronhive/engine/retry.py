"""The retry decision, made inside the store's transaction when a run ends or is lost."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from cronhive.model import RETRYABLE_STATES, Execution

_rng: random.Random = random.SystemRandom()


def decide_retry(execution: Execution) -> datetime | None:
    """When the next attempt of a run that just ended may start, or None for no retry.

    Failed, timed-out and lost runs are retried while the job's policy allows; a run
    someone stopped, or one that succeeded, never is.
    """
    if execution.state not in RETRYABLE_STATES or execution.stop_requested:
        return None
    attempt = execution.attempt + 1
    if not execution.retry.allows(attempt):
        return None
    base = execution.finished_at or execution.not_before
    return base + timedelta(seconds=execution.retry.delay_before(attempt, _rng))
