"""The one exception hierarchy of cronhive.

CronhiveError
├── InvalidInput (ValueError)       bad input; names the bad field, nothing changed
│   └── InvalidSchedule             a cron/interval/once expression or DST policy
├── NotFound (LookupError)          no such thing, *or* one the caller may not see
├── Conflict                        a unique name taken, a state change not allowed
├── PermissionDenied                e.g. run_as not granted (never for visibility)
├── QuotaExceeded                   an owner's limit reached (jobs, queued runs)
├── Fenced                          this node's lease was lost; its write is refused
└── StoreError                      the database failed (driver errors end here)
    └── StoreUnavailable            could not reach it
"""

from __future__ import annotations


class CronhiveError(Exception):
    """Base of every error cronhive raises on purpose."""


class InvalidInput(CronhiveError, ValueError):
    """Bad input. ``field`` names what was wrong; nothing was changed."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class InvalidSchedule(InvalidInput):
    """A schedule expression, time zone or DST policy that cannot be used."""


class NotFound(CronhiveError, LookupError):
    """No such object, or one the caller may not see (the two are never told apart)."""


class Conflict(CronhiveError):
    """The request clashes with what is stored (a name taken, a terminal run)."""


class PermissionDenied(CronhiveError):
    """The caller may see the object but not do this (e.g. an ungranted run_as)."""


class QuotaExceeded(CronhiveError):
    """The owner holds as much as the policy's limits allow; nothing was changed."""


class Fenced(CronhiveError):
    """This node's lease is gone; the run was given away and the write was refused."""


class StoreError(CronhiveError):
    """The database failed in a way the caller cannot fix by changing its input."""


class StoreUnavailable(StoreError):
    """The database could not be reached."""
