"""The store: every row cronhive keeps, on SQLite (one node) or PostgreSQL (a cluster).

    store = await open_store("sqlite:///var/lib/cronhive/cronhive.db")
    store = await open_store("postgresql://cronhive@db.example/cronhive")

The contract is `Store` (cronhive.store.base); docs/store.md explains how each
coordination guarantee is enforced.
"""

from __future__ import annotations

from cronhive.store._open import open_store
from cronhive.store.base import (
    Finish,
    FiringBatch,
    Notification,
    RetryDecider,
    Store,
    Visibility,
)
from cronhive.store.postgres import SessionLimits
from cronhive.store.tokens import Token

__all__ = [
    "Finish",
    "FiringBatch",
    "Notification",
    "RetryDecider",
    "SessionLimits",
    "Store",
    "Token",
    "Visibility",
    "open_store",
]
