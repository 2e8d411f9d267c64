"""One table from cronhive errors to HTTP statuses, for pages and JSON alike."""

from __future__ import annotations

from cronhive.errors import (
    Conflict,
    CronhiveError,
    InvalidInput,
    NotFound,
    PermissionDenied,
    QuotaExceeded,
    StoreUnavailable,
)
from cronhive.web._auth import CsrfFailed, Unauthenticated

# First match wins (subclasses before their bases).
STATUS: tuple[tuple[type[Exception], int], ...] = (
    (Unauthenticated, 401),
    (CsrfFailed, 403),
    (InvalidInput, 400),
    (NotFound, 404),
    (PermissionDenied, 403),
    (Conflict, 409),
    (QuotaExceeded, 429),
    (StoreUnavailable, 503),
    (CronhiveError, 500),
)


def status_of(exc: Exception) -> int | None:
    """The HTTP status for `exc`, or None if it is not one of ours (a bug: let it raise)."""
    for cls, status in STATUS:
        if isinstance(exc, cls):
            return status
    return None
