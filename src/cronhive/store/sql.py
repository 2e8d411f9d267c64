"""The Store contract in SQLAlchemy Core, shared by both backends.

A backend (sqlite.py, postgres.py) supplies engines and a few hooks (see `_core.SqlBase`):
the tag subset predicate, insert-or-ignore, how notifications leave a transaction, and
listening. Every write runs in one transaction (`_write`) that collects its
notifications, so the store, not its callers, tells listeners what changed, and only
once it is committed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

import sqlalchemy as sa

from cronhive.errors import Conflict, NotFound
from cronhive.model import (
    Event,
    Execution,
    Job,
    JobSpec,
    Outcome,
    RunState,
)
from cronhive.store import _rows as rows
from cronhive.store._core import QUEUED, RUNNING, Tx, visible
from cronhive.store._fair import fair_params, fair_pick, next_claimable
from cronhive.store._firing import SqlBatch, stop
from cronhive.store._nodes import NodeOps, live_lease
from cronhive.store._outbox import DeliveryOps, react_started, react_to_ends
from cronhive.store._output import OutputOps
from cronhive.store.base import (
    Finish,
    FiringBatch,
    RetryDecider,
    RunCaps,
    Usage,
    Visibility,
)
from cronhive.store.schema import events, executions, jobs, output_chunks


def _finish_message(outcome: Outcome) -> str:
    parts = [str(outcome.state)]
    if outcome.exit_code is not None:
        parts.append(f"exit {outcome.exit_code}")
    if outcome.signal is not None:
        parts.append(f"signal {outcome.signal}")
    text = " ".join(parts)
    return f"{text}: {outcome.reason}" if outcome.reason else text


# Rows per multi-row INSERT: well under SQLite's 32,766 bound parameters (33 columns).
def _finish_stmt(execution_id: UUID, node_id: UUID, outcome: Outcome) -> Any:
    """Records the end, only if the run is still running on `node_id` (the fence)."""
    c = executions.c
    return (
        executions.update()
        .where(c.id == execution_id, c.state == RUNNING, c.node_id == node_id)
        .values(
            state=str(outcome.state),
            exit_code=outcome.exit_code,
            signal=outcome.signal,
            reason=(
                sa.func.coalesce(c.reason, outcome.reason)
                if outcome.state is RunState.STOPPED
                else outcome.reason
            ),
            finished_at=outcome.finished_at,
            stdout_bytes=outcome.stdout_bytes,
            stderr_bytes=outcome.stderr_bytes,
            output_capped=outcome.output_capped,
            limits_applied=outcome.limits_applied,
        )
        .returning(*executions.c)
    )


def _finish_event(done: Execution, outcome: Outcome) -> Event:
    return Event(
        id=0,
        at=outcome.finished_at,
        kind="run.finished",
        owner=done.owner,
        job_id=done.job_id,
        execution_id=done.id,
        message=_finish_message(outcome),
    )


class SqlStore(DeliveryOps, NodeOps, OutputOps):
    """The shared implementation; see cronhive.store.base for every method's contract."""

    # --- jobs ------------------------------------------------------------------------

    async def create_job(
        self,
        spec: JobSpec,
        *,
        next_fire_at: datetime | None,
        created_by: str,
        now: datetime,
        event: Event | None = None,
    ) -> Job:
        job = Job(
            id=uuid4(),
            spec=spec,
            next_fire_at=next_fire_at,
            created_by=created_by,
            created_at=now,
            updated_at=now,
        )
        values = {
            "id": job.id,
            **rows.spec_values(spec),
            "next_fire_at": next_fire_at,
            "success_count": 0,
            "failure_count": 0,
            "created_by": created_by,
            "created_at": now,
            "updated_at": now,
        }
        try:
            async with self._write() as tx:
                await tx.run(jobs.insert().values(values))
                tx.note("jobs")
                await self._record(tx, event and replace(event, job_id=job.id))
        except Conflict as exc:
            raise Conflict(f"{spec.owner} already has a job named {spec.name!r}") from exc
        return job

    async def get_job(self, job_id: UUID, *, visible_to: Visibility) -> Job:
        found = await self._read(
            sa.select(jobs).where(jobs.c.id == job_id, visible(jobs.c.owner, visible_to))
        )
        if not found:
            raise NotFound(f"no job {job_id}")
        return rows.row_to_job(found[0])

    async def find_job(self, name: str, *, owner: str, visible_to: Visibility) -> Job:
        found = await self._read(
            sa.select(jobs).where(
                jobs.c.owner == owner, jobs.c.name == name, visible(jobs.c.owner, visible_to)
            )
        )
        if not found:
            raise NotFound(f"no job {name!r} of {owner}")
        return rows.row_to_job(found[0])

    async def list_jobs(
        self,
        *,
        visible_to: Visibility,
        owner: str | None = None,
        name_prefix: str | None = None,
        enabled: bool | None = None,
        after: tuple[str, str] | None = None,
        limit: int = 100,
    ) -> list[Job]:
        stmt = sa.select(jobs).where(visible(jobs.c.owner, visible_to))
        if owner is not None:
            stmt = stmt.where(jobs.c.owner == owner)
        if name_prefix:
            stmt = stmt.where(jobs.c.name.startswith(name_prefix, autoescape=True))
        if enabled is not None:
            stmt = stmt.where(jobs.c.enabled == enabled)
        if after is not None:
            stmt = stmt.where(sa.tuple_(jobs.c.owner, jobs.c.name) > sa.tuple_(*after))
        stmt = stmt.order_by(jobs.c.owner, jobs.c.name).limit(limit)
        return [rows.row_to_job(r) for r in await self._read(stmt)]

    async def _update_job(
        self, job_id: UUID, values: dict[str, Any], visible_to: Visibility, event: Event | None
    ) -> Job:
        stmt = (
            jobs.update()
            .where(jobs.c.id == job_id, visible(jobs.c.owner, visible_to))
            .values(values)
            .returning(*jobs.c)
        )
        async with self._write() as tx:
            row = (await tx.run(stmt)).mappings().first()
            if row is None:
                raise NotFound(f"no job {job_id}")
            tx.note("jobs")
            await self._record(tx, event)
        return rows.row_to_job(row)

    async def update_job(
        self,
        job_id: UUID,
        spec: JobSpec,
        *,
        next_fire_at: datetime | None,
        visible_to: Visibility,
        now: datetime,
        event: Event | None = None,
    ) -> Job:
        values = {**rows.spec_values(spec), "next_fire_at": next_fire_at, "updated_at": now}
        try:
            return await self._update_job(job_id, values, visible_to, event)
        except Conflict as exc:
            raise Conflict(f"{spec.owner} already has a job named {spec.name!r}") from exc

    async def set_enabled(
        self,
        job_id: UUID,
        enabled: bool,
        *,
        next_fire_at: datetime | None,
        visible_to: Visibility,
        now: datetime,
        event: Event | None = None,
    ) -> Job:
        values = {"enabled": enabled, "next_fire_at": next_fire_at, "updated_at": now}
        return await self._update_job(job_id, values, visible_to, event)

    async def delete_job(
        self, job_id: UUID, *, visible_to: Visibility, now: datetime, event: Event | None = None
    ) -> None:
        async with self._write() as tx:
            gone = await tx.run(
                jobs.delete()
                .where(jobs.c.id == job_id, visible(jobs.c.owner, visible_to))
                .returning(jobs.c.id)
            )
            if gone.first() is None:
                raise NotFound(f"no job {job_id}")
            await tx.run(
                executions.update()
                .where(executions.c.job_id == job_id, executions.c.state == QUEUED)
                .values(state=str(RunState.SKIPPED), reason="job deleted", finished_at=now)
            )
            tx.note("jobs")
            await self._record(tx, event)

    # --- firing and claiming ---------------------------------------------------------

    @asynccontextmanager
    async def firing(self, now: datetime, limit: int) -> AsyncIterator[FiringBatch]:
        due = (
            sa.select(jobs)
            .where(jobs.c.enabled, jobs.c.next_fire_at <= now)
            .order_by(jobs.c.next_fire_at)
            .limit(limit)
            .with_for_update(skip_locked=True)  # SQLite: the write transaction serialises
        )
        async with self._write() as tx:
            found = [rows.row_to_job(r) for r in (await tx.run(due)).mappings()]
            batch = SqlBatch(self, tx, now, [j for j in found if j.quarantine is None])
            for job in found:
                if job.quarantine is not None:
                    await batch.quarantine(job, job.quarantine)
            yield batch
            if batch.unclaimed:
                tx.note("runs")

    async def next_fire_at(self) -> datetime | None:
        earliest = sa.func.min(jobs.c.next_fire_at).label("at")  # keeps the column type
        found = await self._read(sa.select(earliest).where(jobs.c.enabled))
        value: datetime | None = found[0]["at"]
        return value

    async def enqueue(self, execution: Execution, *, event: Event | None = None) -> Execution:
        try:
            async with self._write() as tx:
                await tx.run(executions.insert().values(rows.execution_values(execution)))
                if execution.state is RunState.QUEUED:
                    tx.note("runs")
                await self._record(tx, event)
        except Conflict as exc:
            raise Conflict(
                f"job {execution.job_name or execution.job_id} already has attempt "
                f"{execution.attempt} of the slot {execution.scheduled_for.isoformat()}"
            ) from exc
        return execution

    def _claim_stmt(self, pick: Any) -> Any:
        """The claim's UPDATE of the runs `pick` selects; the node and the instant are
        bound parameters (``c_node``, ``c_now``). A run is recorded started at `c_now`,
        or at its slot when that is later (a slot armed early)."""
        c = executions.c
        now: Any = sa.bindparam("c_now", type_=c.started_at.type)
        node: Any = sa.bindparam("c_node", type_=c.node_id.type)
        alive = sa.exists().where(live_lease(node, now))
        # A slot armed ahead of its instant (engine.scheduler) starts at its instant.
        start = sa.case((c.scheduled_for > now, c.scheduled_for), else_=now)
        return (
            executions.update()
            .where(c.id.in_(pick), c.state == QUEUED, alive)
            .values(state=RUNNING, node_id=node, started_at=start, **self._fence_value())
            .returning(*executions.c)
        )

    async def _claim(
        self, tx: Tx, pick: Any, node_id: UUID, now: datetime, stmt: Any = None
    ) -> list[Execution]:
        """Marks the picked queued runs `running` on `node_id`, each with a fresh fencing
        token, if the node's lease is live; the claim of `claim` and of the fast path.
        `stmt`: a prepared `_claim_stmt` (then `pick` holds its other parameters)."""
        if stmt is None:
            stmt, params = self._claim_stmt(pick), {}
        else:
            params = pick
        params = {**params, "c_now": now, "c_node": node_id}
        result = await tx.run(stmt, params)
        claimed = [rows.row_to_execution(r) for r in result.mappings()]
        claimed = await self._fence_claimed(tx, claimed)
        await react_started(self, tx, claimed)
        return claimed

    async def claim(
        self,
        node_id: UUID,
        tags: frozenset[str],
        limit: int,
        now: datetime,
        *,
        caps: RunCaps | None = None,
    ) -> list[Execution]:
        # Built once per (tags, caps): constructing the fair statement and its cache key
        # costs ~5 ms of Python, which at hundreds of claims a second starved the node.
        key = (tags, id(caps))
        if (cached := self._claim_cache.get(key)) is None or cached[0] is not caps:
            at: Any = sa.bindparam("c_now", type_=executions.c.not_before.type)

            def eligible(c: Any) -> Any:
                return sa.and_(c.not_before <= at, self._tags_subset(c.target_tags, tags))

            pick = fair_pick(eligible=eligible, caps=caps)
            cached = self._claim_cache[key] = (caps, self._claim_stmt(pick))
        async with self._write() as tx:
            claimed = await self._claim(tx, fair_params(limit), node_id, now, stmt=cached[1])
            if not claimed:
                await self._check_alive(tx, node_id, now)
        return sorted(claimed, key=lambda e: (e.not_before, e.queued_at))

    async def usage(self, owner: str) -> Usage:
        e = executions.c
        count_runs = sa.select(e.state, sa.func.count().label("n")).where(
            e.owner == owner, e.state.in_((QUEUED, RUNNING))
        )
        runs = {r["state"]: r["n"] for r in await self._read(count_runs.group_by(e.state))}
        jobs_of = sa.select(sa.func.count().label("n")).where(jobs.c.owner == owner)
        [found] = await self._read(jobs_of.select_from(jobs))
        return Usage(
            jobs=int(found["n"]),
            queued=int(runs.get(QUEUED, 0)),
            running=int(runs.get(RUNNING, 0)),
        )

    async def next_claimable_at(
        self, tags: frozenset[str], *, caps: RunCaps | None = None
    ) -> datetime | None:
        c = executions.c
        eligible = self._tags_subset(c.target_tags, tags)
        stmt = sa.select(sa.func.min(c.not_before)).where(c.state == QUEUED, eligible)
        if caps is not None:
            stmt = next_claimable(eligible, caps)
        found = (await self._read(stmt))[0]
        at: datetime | None = next(iter(found.values()))
        return at

    async def finish_many(
        self, finishes: Sequence[Finish], *, node_id: UUID, retry: RetryDecider
    ) -> list[tuple[Execution, Execution | None] | None]:
        if not finishes:
            return []
        async with self._write() as tx:
            return await self._end_runs(tx, finishes, node_id, retry)

    async def _end_runs(
        self,
        tx: Tx,
        finishes: Sequence[Finish],
        node_id: UUID,
        retry: RetryDecider,
        *,
        settle: bool = True,
    ) -> list[tuple[Execution, Execution | None] | None]:
        results: list[tuple[Execution, Execution | None] | None] = []
        ended = await self._record_ends(tx, finishes, node_id)
        finished: list[dict[str, Any]] = []
        output: list[dict[str, Any]] = []
        for item in finishes:
            row = ended.pop(item.execution_id, None)
            if row is None:
                results.append(None)  # given away: its late output is not ours either
                continue
            done = rows.row_to_execution(row)
            output += (rows.chunk_values(done.id, ch) for ch in item.chunks)
            finished.append(rows.event_values(_finish_event(done, item.outcome)))
            tx.note("output", str(done.id))
            again = await self._queue_retry(tx, done, retry, item.outcome.finished_at)
            results.append((done, again))
        if output:
            await tx.run(
                self._insert(output_chunks).on_conflict_do_nothing(),  # type: ignore[attr-defined]
                output,
            )
        if finished:
            await tx.run(events.insert(), finished)  # one executemany for the batch
            tx.note("events")
        if not settle:
            return results  # the caller reacts and tallies, with its own ends
        # The outcome's notifications go into the outbox in the same commit, just
        # before the tally (they lock the same job rows, in the same order).
        reacted = [(r[0], r[1] is not None) for r in results if r is not None]
        await react_to_ends(self, tx, reacted, finishes[0].outcome.finished_at)
        await self._tally(tx, [r[0] for r in results if r is not None])
        return results

    async def _record_ends(
        self, tx: Tx, finishes: Sequence[Finish], node_id: UUID
    ) -> dict[UUID, Any]:
        """The fenced UPDATE of each end; the rows that took, by id. One statement per
        run here (SQLite's are in-process: microseconds); PostgreSQL batches them."""
        ended: dict[UUID, Any] = {}
        for item in finishes:
            if item.execution_id in ended:
                continue  # a second end for the same run is refused like a stale one
            stmt = _finish_stmt(item.execution_id, node_id, item.outcome)
            row = (await tx.run(stmt)).mappings().first()
            if row is not None:
                ended[item.execution_id] = row
        return ended

    async def request_stop(
        self,
        execution_id: UUID,
        *,
        visible_to: Visibility,
        reason: str,
        now: datetime,
        event: Event | None = None,
    ) -> Execution:
        async with self._write() as tx:
            ex = await stop(tx, execution_id, visible_to, reason, now)
            if ex is None:
                raise NotFound(f"no run {execution_id}")
            await self._record(tx, event)
        return ex

    async def get_execution(self, execution_id: UUID, *, visible_to: Visibility) -> Execution:
        found = await self._read(
            sa.select(executions).where(
                executions.c.id == execution_id, visible(executions.c.owner, visible_to)
            )
        )
        if not found:
            raise NotFound(f"no run {execution_id}")
        return rows.row_to_execution(found[0])

    async def list_executions(
        self,
        *,
        visible_to: Visibility,
        job_id: UUID | None = None,
        states: Collection[RunState] | None = None,
        before: tuple[datetime, UUID] | None = None,
        limit: int = 100,
    ) -> list[Execution]:
        c = executions.c
        stmt = sa.select(executions).where(visible(c.owner, visible_to))
        if job_id is not None:
            stmt = stmt.where(c.job_id == job_id)
        if states is not None:
            stmt = stmt.where(c.state.in_(sorted(str(s) for s in states)))
        if before is not None:
            stmt = stmt.where(
                sa.tuple_(c.queued_at, c.id)
                < sa.tuple_(
                    sa.literal(before[0], type_=c.queued_at.type),
                    sa.literal(before[1], type_=c.id.type),
                )
            )
        stmt = stmt.order_by(c.queued_at.desc(), c.id.desc()).limit(limit)
        return [rows.row_to_execution(r) for r in await self._read(stmt)]
