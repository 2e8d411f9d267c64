"""Driver errors become cronhive errors here, where they enter; nothing else leaks."""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

from sqlalchemy import exc as sa_exc

from cronhive.errors import Conflict, CronhiveError, StoreError, StoreUnavailable

# SQLite errors that mean "the file cannot be used", not "this statement failed".
_SQLITE_UNAVAILABLE = ("unable to open", "disk i/o", "readonly database", "no such table")


def _psycopg() -> ModuleType | None:
    """psycopg if loaded: a SQLite node never imports it (~10 MB), and no psycopg error
    can exist before it is."""
    return sys.modules.get("psycopg")


def is_unique_violation(exc: BaseException) -> bool:
    orig = getattr(exc, "orig", exc)
    pg = _psycopg()
    if pg is not None and isinstance(orig, pg.errors.UniqueViolation):
        return True
    return isinstance(orig, sqlite3.IntegrityError) and "UNIQUE constraint" in str(orig)


def _unavailable(exc: BaseException) -> bool:
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    orig = getattr(exc, "orig", exc)
    pg = _psycopg()
    if pg is not None and isinstance(orig, pg.OperationalError):
        state = orig.sqlstate
        return state is None or state.startswith(("08", "57P", "53"))
    if isinstance(orig, sqlite3.OperationalError):
        return str(orig).lower().startswith(_SQLITE_UNAVAILABLE)
    return isinstance(orig, OSError) or (pg is not None and isinstance(orig, pg.InterfaceError))


def describe(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    return str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__


def translate_error(exc: BaseException) -> CronhiveError:
    """The cronhive error for a driver or SQLAlchemy error."""
    if isinstance(exc, CronhiveError):
        return exc
    if is_unique_violation(exc):
        return Conflict(f"conflicts with a stored row: {describe(exc)}")
    if isinstance(exc, sa_exc.TimeoutError | TimeoutError) or _unavailable(exc):
        return StoreUnavailable(f"database unavailable: {describe(exc)}")
    return StoreError(f"database error: {describe(exc)}")


_DRIVER_ERRORS = (sa_exc.SQLAlchemyError, sqlite3.Error, OSError, TimeoutError)


def _driver_errors() -> tuple[type[BaseException], ...]:
    pg = _psycopg()
    return _DRIVER_ERRORS if pg is None else (*_DRIVER_ERRORS, pg.Error)


@contextmanager
def translating() -> Iterator[None]:
    """Re-raises driver errors (SQLAlchemy, psycopg, sqlite3, sockets) as cronhive errors."""
    try:
        yield
    except _driver_errors() as exc:  # evaluated only when something was raised
        raise translate_error(exc) from exc
