"""Column types that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeEngine

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Aware UTC datetimes in and out.

    PostgreSQL: `timestamptz`. SQLite: integer microseconds since the epoch, which sorts,
    compares and indexes exactly (SQLite's text datetimes compare as strings and lose
    the zone). Naive datetimes are refused: they are always a bug here.
    """

    impl = sa.BigInteger
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.TIMESTAMP(timezone=True))
        return dialect.type_descriptor(sa.BigInteger())

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} given to the store; use aware UTC")
        if dialect.name == "postgresql":
            return value
        return (value - _EPOCH) // _MICRO

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, datetime):
            return value.astimezone(UTC)
        return _EPOCH + timedelta(microseconds=int(value))


def tags_type() -> TypeEngine[Any]:
    """A set of strings: `text[]` on PostgreSQL (for `<@`), a JSON array on SQLite (for
    `json_each`). Python side: a sorted list."""
    return sa.JSON().with_variant(postgresql.ARRAY(sa.Text()), "postgresql")


def json_type() -> TypeEngine[Any]:
    """Structured values (argv, env): JSONB on PostgreSQL, JSON text on SQLite."""
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def id_type() -> TypeEngine[Any]:
    """Autoincrement ids: BIGINT on PostgreSQL, INTEGER on SQLite (its rowid alias)."""
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")
