"""The one table from cronhive errors to gRPC status codes, and the guard every RPC runs in.

InvalidInput (InvalidSchedule)  INVALID_ARGUMENT   message names the field
NotFound                        NOT_FOUND          also for what the caller may not see
Conflict                        ALREADY_EXISTS     a name or slot taken
PermissionDenied                PERMISSION_DENIED  run_as, scheduler role, foreign owner
QuotaExceeded                   RESOURCE_EXHAUSTED an owner's jobs or queued runs limit
Fenced, StoreUnavailable        UNAVAILABLE        retry, possibly on another node
StoreError                      INTERNAL           logged; generic message
anything else                   INTERNAL           logged; generic message, no traceback
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from google.protobuf.message import DecodeError
from grpclib.const import Status
from grpclib.exceptions import GRPCError

from cronhive.errors import (
    Conflict,
    CronhiveError,
    Fenced,
    InvalidInput,
    NotFound,
    PermissionDenied,
    QuotaExceeded,
    StoreError,
    StoreUnavailable,
)

__all__ = ["ERROR_TABLE", "guard", "status_of"]

log = logging.getLogger(__name__)

# Order matters: the first class an error is an instance of wins (subclasses first).
ERROR_TABLE: tuple[tuple[type[CronhiveError], Status], ...] = (
    (InvalidInput, Status.INVALID_ARGUMENT),
    (NotFound, Status.NOT_FOUND),
    (Conflict, Status.ALREADY_EXISTS),
    (PermissionDenied, Status.PERMISSION_DENIED),
    (QuotaExceeded, Status.RESOURCE_EXHAUSTED),
    (Fenced, Status.UNAVAILABLE),
    (StoreUnavailable, Status.UNAVAILABLE),
    (StoreError, Status.INTERNAL),
)

INTERNAL_MESSAGE = "internal error (logged on the server)"


def status_of(exc: BaseException) -> tuple[Status, str]:
    """The status and message a client sees for `exc`. Only our own errors' messages
    reach the client (they are written for it); anything else gets a generic message."""
    if isinstance(exc, GRPCError):
        return exc.status, exc.message or ""
    if isinstance(exc, DecodeError):
        return Status.INVALID_ARGUMENT, "request: not a valid protobuf message"
    if isinstance(exc, InvalidInput) and exc.field and not str(exc).startswith(exc.field):
        return Status.INVALID_ARGUMENT, f"{exc.field}: {exc}"  # always name the field
    for cls, status in ERROR_TABLE:
        if isinstance(exc, cls):
            if status is Status.INTERNAL:
                return status, INTERNAL_MESSAGE
            return status, str(exc)
    return Status.INTERNAL, INTERNAL_MESSAGE


@asynccontextmanager
async def guard(method: str) -> AsyncIterator[None]:
    """Runs an RPC body: every exception leaves as a `GRPCError` per the table above.

    INTERNAL ones are logged with their traceback (server side only). Cancellation (the
    client went away, the server is closing) passes through untouched.
    """
    try:
        yield
    except (asyncio.CancelledError, GRPCError):
        raise
    except Exception as exc:
        status, message = status_of(exc)
        if status is Status.INTERNAL:
            log.exception("%s failed", method)
        elif status is Status.UNAVAILABLE:
            log.warning("%s: %s", method, exc)
        raise GRPCError(status, message) from None
