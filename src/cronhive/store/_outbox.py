"""The reactions outbox: deliveries written with the outcome they tell of, claimed by
any node, and recorded as delivered or failed.

Writers (finish_many, reap, a firing batch, a claim) call `react_to_ends`,
`react_missed` or `react_started` inside their own transaction, so an outcome and its
notifications commit together or not at all, in a few statements per batch. The job
rows are read `FOR UPDATE` in id order just before the writer tallies them (the same
rows, in the store's one lock order), so two nodes finishing runs of one job decide
"recovery" one after the other, never both.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import sqlalchemy as sa

from cronhive.errors import Conflict, NotFound
from cronhive.model import (
    Delivery,
    DeliveryState,
    Event,
    Execution,
    Job,
    NotifyOn,
    OutputChunk,
    RunState,
)
from cronhive.store import _rows as rows
from cronhive.store._core import FAILURES, SqlBase, Tx, visible
from cronhive.store.base import Visibility
from cronhive.store.schema import deliveries, jobs, nodes, notify_defaults, output_chunks

PENDING = str(DeliveryState.PENDING)
DELIVERING = str(DeliveryState.DELIVERING)
# The environment variable a chained run carries its depth in (the payload copies it,
# never the rest of the environment, which may hold secrets).
DEPTH_ENV = "CRONHIVE_TRIGGER_DEPTH"


def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat()


def run_payload(ex: Execution, event: NotifyOn) -> dict[str, Any]:
    """What a delivery says about a run; the deliverer adds the output tail and links."""
    try:
        depth = int(ex.run.env.get(DEPTH_ENV, "0"))
    except ValueError:
        depth = 0
    return {
        "event": str(event),
        "job": {"id": str(ex.job_id) if ex.job_id else None, "name": ex.job_name},
        "owner": ex.owner,
        "run": {
            "id": str(ex.id),
            "attempt": ex.attempt,
            "state": str(ex.state),
            "exit_code": ex.exit_code,
            "signal": ex.signal,
            "reason": ex.reason,
            "node_id": str(ex.node_id) if ex.node_id else None,
            "scheduled_for": _iso(ex.scheduled_for),
            "queued_at": _iso(ex.queued_at),
            "started_at": _iso(ex.started_at),
            "finished_at": _iso(ex.finished_at),
            "chain_depth": depth,
        },
    }


Notify = dict[str, tuple[str, ...]]


def effective(own: Any, defaults: Any) -> Notify:
    """A job's triggers: its owner's defaults, each event the job has a rule for replaced
    by that rule."""
    return {**rows.row_to_notify(defaults), **rows.row_to_notify(own)}


# The jobs' triggers with their owners' defaults (LEFT JOIN: most owners have none).
_WITH_DEFAULTS = jobs.outerjoin(notify_defaults, notify_defaults.c.owner == jobs.c.owner)
_DEFAULTS = notify_defaults.c.notify.label("defaults")


def _rows_for(
    ex: Execution,
    event: NotifyOn,
    targets: Iterable[str],
    now: datetime,
    payload: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    body = dict(payload) if payload is not None else run_payload(ex, event)
    return [
        rows.delivery_values(
            Delivery(
                id=uuid4(),
                event=event,
                target=target,
                owner=ex.owner,
                job_id=ex.job_id,
                job_name=ex.job_name,
                execution_id=ex.id,
                payload=body,
                next_attempt_at=now,
                created_at=now,
            )
        )
        for target in sorted(set(targets))
    ]


async def _insert(store: SqlBase, tx: Tx, values: list[dict[str, Any]]) -> None:
    if values:
        stmt = store._insert(deliveries).on_conflict_do_nothing()  # type: ignore[attr-defined]
        await tx.run(stmt, values)
        tx.note("deliveries")


async def react_to_ends(
    store: SqlBase, tx: Tx, ended: Sequence[tuple[Execution, bool]], now: datetime
) -> None:
    """The outbox rows of runs that just ended, in `tx`: `ended` holds (run, whether a
    retry follows it), in the order they ended. A few statements per batch, whatever
    its size: the jobs' triggers and `failing` flags are read `FOR UPDATE` in one
    statement, in id order (the store's one lock order, which the tally after it keeps
    too), so two nodes ending runs of one job decide "recovery" one after the other."""
    by_job: dict[UUID, list[tuple[Execution, bool]]] = {}
    for ex, retried in ended:
        if ex.job_id is not None:
            by_job.setdefault(ex.job_id, []).append((ex, retried))
    if not by_job:
        return
    found = await tx.run(
        sa.select(jobs.c.id, jobs.c.notify, jobs.c.failing, _DEFAULTS)
        .select_from(_WITH_DEFAULTS)
        .where(jobs.c.id.in_(sorted(by_job, key=str)))
        .order_by(jobs.c.id)
        .with_for_update(of=jobs)  # SQLite: the write transaction serialises
    )
    tx.locked_jobs.update(by_job)
    values: list[dict[str, Any]] = []
    flips: list[dict[str, Any]] = []
    for row in found.mappings():
        notify, was = effective(row["notify"], row["defaults"]), bool(row["failing"])
        failing = was
        for ex, retried in by_job[row["id"]]:
            happened: list[NotifyOn] = []
            if ex.state is RunState.SUCCEEDED:
                happened.append(NotifyOn.SUCCESS)
                if failing:
                    happened.append(NotifyOn.RECOVERY)
                failing = False
            elif str(ex.state) in FAILURES and not retried:
                happened.append(NotifyOn.FAILURE)
                failing = True
            for event in happened:
                values += _rows_for(ex, event, notify.get(str(event), ()), now)
        if failing != was:
            flips.append({"b_id": row["id"], "b_failing": failing})
    if flips:
        await tx.run(_FLIP, flips)
    await _insert(store, tx, values)


_FLIP = (
    jobs.update()
    .where(jobs.c.id == sa.bindparam("b_id"))
    .values(failing=sa.bindparam("b_failing", type_=sa.Boolean()))
)


async def react_started(store: SqlBase, tx: Tx, claimed: Sequence[Execution]) -> None:
    """`start` deliveries of just-claimed runs (one read of their jobs' triggers)."""
    job_ids = sorted({ex.job_id for ex in claimed if ex.job_id is not None}, key=str)
    if not job_ids:
        return
    found = await tx.run(
        sa.select(jobs.c.id, jobs.c.notify, _DEFAULTS)
        .select_from(_WITH_DEFAULTS)
        .where(
            jobs.c.id.in_(job_ids),
            sa.or_(jobs.c.notify.is_not(None), notify_defaults.c.notify.is_not(None)),
        )
    )
    starts = {
        r["id"]: effective(r["notify"], r["defaults"]).get(str(NotifyOn.START), ())
        for r in found.mappings()
    }
    values: list[dict[str, Any]] = []
    for ex in claimed:
        targets = starts.get(ex.job_id) if ex.job_id is not None else None
        if targets:
            values += _rows_for(ex, NotifyOn.START, targets, ex.started_at or ex.queued_at)
    await _insert(store, tx, values)


async def react_missed(
    store: SqlBase,
    tx: Tx,
    skipped: Sequence[Execution],
    own: Mapping[UUID, Job],
    now: datetime,
) -> None:
    """One `missed` delivery per job of a firing batch, however many of its slots were
    skipped (a day of every-minute slots is one message, not 1,440), for the latest.
    `own`: the batch's jobs by id (their triggers; their owners' defaults are read)."""
    owners = sorted({own[i].owner for e in skipped if (i := e.job_id) is not None and i in own})
    found = await tx.run(
        sa.select(notify_defaults.c.owner, notify_defaults.c.notify).where(
            notify_defaults.c.owner.in_(owners)
        )
    )
    defaults = {r["owner"]: r["notify"] for r in found.mappings()}
    notify = {i: effective(dict(j.spec.notify), defaults.get(j.owner)) for i, j in own.items()}
    by_job: dict[UUID, list[Execution]] = {}
    for ex in skipped:
        if ex.job_id is not None and notify.get(ex.job_id, {}).get(str(NotifyOn.MISSED)):
            by_job.setdefault(ex.job_id, []).append(ex)
    values: list[dict[str, Any]] = []
    for job_id, missed in by_job.items():
        missed.sort(key=lambda e: e.scheduled_for)
        last = missed[-1]
        payload = run_payload(last, NotifyOn.MISSED)
        payload["missed"] = {
            "count": len(missed),
            "first": _iso(missed[0].scheduled_for),
            "last": _iso(last.scheduled_for),
        }
        targets = notify[job_id][str(NotifyOn.MISSED)]
        values += _rows_for(last, NotifyOn.MISSED, targets, now, payload)
    await _insert(store, tx, values)


class DeliveryOps(SqlBase):
    """claim_deliveries, settle_delivery, list_deliveries, retry_delivery, output_tail,
    notify defaults."""

    async def set_notify_defaults(
        self,
        owner: str,
        notify: Mapping[str, tuple[str, ...]],
        *,
        by: str,
        now: datetime,
        event: Event | None = None,
    ) -> None:
        value = rows.notify_value(notify)
        async with self._write() as tx:
            await self._record(tx, event)
            await tx.run(notify_defaults.delete().where(notify_defaults.c.owner == owner))
            if value is not None:
                await tx.run(
                    notify_defaults.insert().values(
                        owner=owner, notify=value, updated_by=by, updated_at=now
                    )
                )

    async def notify_defaults(self, *, visible_to: Visibility) -> dict[str, Notify]:
        found = await self._read(
            sa.select(notify_defaults).where(visible(notify_defaults.c.owner, visible_to))
        )
        return {r["owner"]: rows.row_to_notify(r["notify"]) for r in found}

    async def output_tail(self, execution_id: UUID, *, chunks: int = 8) -> list[OutputChunk]:
        c = output_chunks.c
        stmt = (
            sa.select(output_chunks)
            .where(c.execution_id == execution_id)
            .order_by(c.seq.desc())
            .limit(chunks)
        )
        return sorted((rows.row_to_chunk(r) for r in await self._read(stmt)), key=lambda x: x.seq)

    async def claim_deliveries(
        self,
        node_id: UUID,
        *,
        targets: Collection[str],
        limit: int,
        claim_for: float,
        now: datetime,
    ) -> list[Delivery]:
        if not targets:
            return []
        d = deliveries.alias("pick").c
        holder_alive = sa.exists().where(
            nodes.c.id == d.claimed_by, nodes.c.lease_expires_at > now, nodes.c.down_since.is_(None)
        )
        due = sa.or_(
            sa.and_(d.state == PENDING, d.next_attempt_at <= now),
            # A claim whose node died (lease gone) or overran its time: taken over.
            sa.and_(d.state == DELIVERING, sa.or_(d.claim_expires_at <= now, ~holder_alive)),
        )
        pick = (
            sa.select(d.id)
            .where(due, d.target.in_(sorted(targets)))
            .order_by(d.next_attempt_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
            .cte("picked")
            .prefix_with("MATERIALIZED", dialect="postgresql")
        )
        alive = sa.exists().where(
            nodes.c.id == node_id, nodes.c.lease_expires_at > now, nodes.c.down_since.is_(None)
        )
        stmt = (
            deliveries.update()
            .where(deliveries.c.id.in_(sa.select(pick.c.id)), alive)
            .values(
                state=DELIVERING,
                claimed_by=node_id,
                claim_expires_at=now + timedelta(seconds=claim_for),
                attempts=deliveries.c.attempts + 1,
            )
            .returning(*deliveries.c)
        )
        async with self._write() as tx:
            found = [rows.row_to_delivery(r) for r in (await tx.run(stmt)).mappings()]
        return sorted(found, key=lambda x: x.next_attempt_at)

    async def settle_delivery(
        self,
        delivery_id: UUID,
        *,
        node_id: UUID,
        now: datetime,
        error: str | None = None,
        retry_at: datetime | None = None,
    ) -> bool:
        c = deliveries.c
        if error is None:
            values: dict[str, Any] = {
                "state": str(DeliveryState.DELIVERED),
                "delivered_at": now,
                "last_error": None,
            }
        elif retry_at is not None:
            values = {"state": PENDING, "next_attempt_at": retry_at, "last_error": error[:2000]}
        else:
            values = {"state": str(DeliveryState.FAILED), "last_error": error[:2000]}
        values |= {"claimed_by": None, "claim_expires_at": None}
        async with self._write() as tx:
            done = await tx.run(
                deliveries.update()
                .where(c.id == delivery_id, c.state == DELIVERING, c.claimed_by == node_id)
                .values(values)
            )
            if done.rowcount and retry_at is not None:
                tx.note("deliveries")
        return bool(done.rowcount)

    async def list_deliveries(
        self,
        *,
        visible_to: Visibility,
        job_id: UUID | None = None,
        states: Iterable[DeliveryState] | None = None,
        limit: int = 100,
    ) -> list[Delivery]:
        c = deliveries.c
        stmt = sa.select(deliveries).where(visible(c.owner, visible_to))
        if job_id is not None:
            stmt = stmt.where(c.job_id == job_id)
        if states is not None:
            stmt = stmt.where(c.state.in_(sorted(str(s) for s in states)))
        stmt = stmt.order_by(c.created_at.desc(), c.id).limit(limit)
        return [rows.row_to_delivery(r) for r in await self._read(stmt)]

    async def get_delivery(self, delivery_id: UUID, *, visible_to: Visibility) -> Delivery:
        found = await self._read(
            sa.select(deliveries).where(
                deliveries.c.id == delivery_id, visible(deliveries.c.owner, visible_to)
            )
        )
        if not found:
            raise NotFound(f"no delivery {delivery_id}")
        return rows.row_to_delivery(found[0])

    async def retry_delivery(
        self,
        delivery_id: UUID,
        *,
        visible_to: Visibility,
        now: datetime,
        event: Event | None = None,
    ) -> Delivery:
        c = deliveries.c
        async with self._write() as tx:
            row = (
                (
                    await tx.run(
                        deliveries.update()
                        .where(
                            c.id == delivery_id,
                            visible(c.owner, visible_to),
                            c.state == str(DeliveryState.FAILED),
                        )
                        .values(state=PENDING, attempts=0, next_attempt_at=now)
                        .returning(*deliveries.c)
                    )
                )
                .mappings()
                .first()
            )
            if row is not None:
                tx.note("deliveries")
                await self._record(tx, event)
        if row is None:
            current = await self.get_delivery(delivery_id, visible_to=visible_to)
            raise Conflict(f"delivery {delivery_id} is {current.state}, not failed")
        return rows.row_to_delivery(row)
