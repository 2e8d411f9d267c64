"""Which queued runs a claim takes: interleaved across owners, within their caps.

Each candidate gets a *load*: its owner's running runs plus its place in that owner's
queue (1 for the owner's oldest queued run). Taking candidates in order of load (then
oldest first) interleaves owners: one owner's hundred queued runs have loads r+1 ..
r+100, another's single run has load 1, so it goes after at most one of them. A cap
keeps only candidates whose load is within it.

PostgreSQL refuses `FOR UPDATE` in a query with a window function, so the pick is two
levels: a materialised CTE ranks the candidates (no locks), and the outer SELECT locks
the best of them `FOR UPDATE SKIP LOCKED` (re-checking they are still queued), taking
`limit` in load order from a pool of a few times `limit`, so rows another node has
locked are stepped over instead of leaving this claim short. SQLite serialises writers,
so the same statement (its `FOR UPDATE` compiles to nothing) is exact there too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql import ColumnElement

from cronhive.store._core import QUEUED, RUNNING
from cronhive.store.base import RunCaps
from cronhive.store.schema import executions

# Stands for "no cap" inside SQL (a load never gets near it).
_NO_CAP = 2**62
# Candidates ranked per claimed row: room to step over rows other nodes hold locked.
_POOL = 4
# The oldest queued runs a claim ranks (read as the old claim read its batch): the
# ranking's cost stays small however long the queue. Interleaving is exact among these,
# so an owner waits behind at most one run start once its run is this near the front.
HEAD = 500


def _cap(owner: Any, caps: RunCaps) -> ColumnElement[int]:
    named = {o: _NO_CAP if c is None else c for o, c in sorted(caps.owners.items())}
    default = _NO_CAP if caps.default is None else caps.default
    if not named:
        return sa.literal(default, sa.BigInteger)
    return sa.case(named, value=owner, else_=sa.literal(default, sa.BigInteger))


def fair_params(limit: int) -> dict[str, int]:
    """The values of `fair_pick`'s bound parameters for a claim of `limit` runs."""
    return {"f_limit": limit, "f_pool": limit * _POOL, "f_head": max(HEAD, limit * _POOL)}


def fair_pick(
    *,
    eligible: Callable[[Any], ColumnElement[bool]],
    caps: RunCaps | None,
) -> sa.Select[Any]:
    """A SELECT of the ids to claim, locked on PostgreSQL: at most `f_limit` queued runs
    for which `eligible(columns)` holds (the caller's condition on not_before and tags,
    over the candidate table's columns), in load order among the `HEAD` oldest, within
    `caps`. The sizes are bound parameters (`fair_params`): building this statement and
    its cache key costs milliseconds of Python, so a store builds it once per node."""
    limit: Any = sa.bindparam("f_limit")
    pool_size: Any = sa.bindparam("f_pool")
    running = running_counts()
    c = executions.alias("pick").c
    head = (
        sa.select(c.id, c.owner, c.not_before, c.queued_at)
        .where(c.state == QUEUED, eligible(c))
        .order_by(c.not_before, c.queued_at)
        .limit(sa.bindparam("f_head"))
        .subquery("head")
    )
    q = head
    place = sa.func.row_number().over(
        partition_by=q.c.owner, order_by=(q.c.not_before, q.c.queued_at)
    )
    ranked = (
        sa.select(
            q.c.id,
            q.c.owner,
            q.c.not_before,
            q.c.queued_at,
            place.label("place"),
            (place + sa.func.coalesce(running.c.n, 0)).label("load"),
        )
        .select_from(q.outerjoin(running, running.c.owner == q.c.owner))
        .subquery("ranked")
    )
    # An owner's candidates past the first `limit * _POOL` can never make the pool: that
    # many of its own go before them. Saying so lets PostgreSQL stop numbering early.
    pool = sa.select(ranked.c.id, ranked.c.load, ranked.c.not_before, ranked.c.queued_at).where(
        ranked.c.place <= pool_size
    )
    if caps is not None:
        pool = pool.where(ranked.c.load <= _cap(ranked.c.owner, caps))
    best = (
        pool.order_by(ranked.c.load, ranked.c.not_before, ranked.c.queued_at, ranked.c.id)
        .limit(pool_size)
        .cte("best")
        .prefix_with("MATERIALIZED", dialect="postgresql")  # rank once, not per row
    )
    x = executions.alias("take")
    # The state test re-checks each row as it is locked: one another node took since our
    # snapshot is passed over and the next best taken, instead of using up the limit.
    picked = (
        sa.select(x.c.id)
        .join(best, best.c.id == x.c.id)
        .where(x.c.state == QUEUED)
        .order_by(best.c.load, best.c.not_before, best.c.queued_at, best.c.id)
        .limit(limit)
        .with_for_update(of=x, skip_locked=True)
        # Materialised: PostgreSQL may otherwise re-run the LIMITed subquery per row.
        .cte("picked")
        .prefix_with("MATERIALIZED", dialect="postgresql")
    )
    return sa.select(picked.c.id)


def running_counts() -> Any:
    """A CTE of (owner, n): each owner's running runs, cluster-wide."""
    e = executions.alias("busy")
    return (
        sa.select(e.c.owner, sa.func.count().label("n"))
        .where(e.c.state == RUNNING)
        .group_by(e.c.owner)
        .cte("running")
    )


def next_claimable(eligible: ColumnElement[bool], caps: RunCaps) -> sa.Select[Any]:
    """The earliest `not_before` of queued runs matching `eligible` (over `executions`)
    whose owner is below its cap: the others wait for a run of theirs to end."""
    running = running_counts()
    c = executions.c
    return (
        sa.select(sa.func.min(c.not_before))
        .select_from(executions.outerjoin(running, running.c.owner == c.owner))
        .where(
            c.state == QUEUED,
            eligible,
            sa.func.coalesce(running.c.n, 0) < _cap(c.owner, caps),
        )
    )
