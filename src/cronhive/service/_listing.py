"""Listing runs with filters the store has no index for (node, since, owner), on top of
`Store.list_executions` (the service's `list_runs`)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from cronhive.errors import NotFound
from cronhive.model import Execution, RunState
from cronhive.store.base import Store, Visibility

__all__ = ["SCAN_PAGES", "RunFilter", "filtered_runs", "narrowed", "node_ids"]

SCAN_PAGES = 20  # store pages one filtered call reads at most


@dataclass(frozen=True, kw_only=True)
class RunFilter:
    job_id: UUID | None = None
    states: Collection[RunState] | None = None
    nodes: set[UUID | None] | None = None  # None: any node
    since: datetime | None = None  # queued at or after
    job_name: str | None = None  # runs of jobs of this name, deleted ones included


def narrowed(visible: Visibility, owner: str) -> Visibility:
    """Only `owner`'s runs, and only if the caller may see them (none otherwise)."""
    if visible is None or owner in visible:
        return frozenset({owner})
    return frozenset()


async def node_ids(store: Store, ref: str, now: datetime) -> set[UUID | None]:
    """Ids of the nodes named `ref` (a node registering again reuses its name), or the
    id itself. An unknown name matches nothing, as an unknown state would."""
    try:
        return {UUID(ref)}
    except ValueError:
        pass
    return {n.id for n in await store.list_nodes(now=now) if n.name == ref}


async def filtered_runs(
    store: Store,
    wanted: RunFilter,
    *,
    visible_to: Visibility,
    before: tuple[datetime, UUID] | None,
    size: int,
) -> tuple[list[Execution], Execution | None]:
    """Up to `size` matching runs, newest first, and the row to continue after (None: no
    more). Reads at most `SCAN_PAGES` store pages: a page may hold fewer rows and still
    name a next page. A job with no runs that the caller may not see is `NotFound`."""
    if visible_to is not None and not visible_to:
        return [], None
    found: list[Execution] = []
    rows: list[Execution] = []
    for _ in range(SCAN_PAGES):
        rows = await store.list_executions(
            visible_to=visible_to,
            job_id=wanted.job_id,
            states=wanted.states,
            before=before,
            limit=size + 1,
        )
        if wanted.job_id is not None and not rows and before is None:
            # The history of a deleted job stays listable; an unknown or foreign job is
            # not found, as everywhere else.
            try:
                await store.get_job(wanted.job_id, visible_to=visible_to)
            except NotFound:
                raise NotFound(f"no such job: {wanted.job_id}") from None
        for i, row in enumerate(rows[:size]):
            if wanted.since is not None and row.queued_at < wanted.since:
                return found, None  # newest first: all further rows are older
            if (wanted.nodes is None or row.node_id in wanted.nodes) and (
                wanted.job_name is None or row.job_name == wanted.job_name
            ):
                found.append(row)
                if len(found) == size:
                    return found, (row if i + 1 < len(rows) else None)
        if len(rows) <= size:
            return found, None
        before = (rows[size - 1].queued_at, rows[size - 1].id)
    return found, rows[size - 1]
