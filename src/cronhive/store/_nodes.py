"""Nodes, leases and the reaper: liveness enforced in SQL.

A lease is `nodes.lease_expires_at`. Renewal is a conditional UPDATE that refuses an
expired lease, so a node that missed its deadline learns it is fenced instead of
silently coming back. Reaping locks the dead node's row (PostgreSQL `FOR UPDATE SKIP
LOCKED`; SQLite's write lock), so each lost run is handled by exactly one reaper. A
reaped or departed node's row stays, marked down, for `DOWN_RETENTION`, so operators
see which node died and when it was last heard from.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import sqlalchemy as sa

from cronhive.errors import Conflict, Fenced
from cronhive.model import Event, Execution, Node, Outcome, RunState
from cronhive.store import _rows as rows
from cronhive.store._core import RUNNING, SqlBase, Tx
from cronhive.store._outbox import react_to_ends
from cronhive.store.base import DOWN_RETENTION, Finish, RetryDecider
from cronhive.store.schema import events, executions, nodes, output_chunks


def _running_on(node_id: UUID) -> sa.ColumnElement[bool]:
    return sa.and_(executions.c.node_id == node_id, executions.c.state == RUNNING)


def vouched_outcome(
    witness: dict[str, Any], node: str, now: datetime, *, stdout: int, stderr: int
) -> Outcome:
    """The end a node's supervisor wrote (`executions.witness`), as the reaper records
    it: byte counts are what was stored, and the reason says what may be missing."""
    state = RunState(witness["state"])
    said = witness.get("reason")
    if "stdout_bytes" not in witness:  # seen as the leader exited, before its output
        why = (
            f"node {node} stopped answering as the command ended; its supervisor kept "
            "the exit status; output not yet stored then is missing"
        )
    else:
        missing = max(0, witness.get("stdout_bytes", 0) - stdout) + max(
            0, witness.get("stderr_bytes", 0) - stderr
        )
        why = (
            f"node {node} stopped answering before recording this end; "
            f"{missing} byte(s) of output were not stored"
            if missing
            else f"recorded by node {node}'s supervisor (the node stopped answering)"
        )
    return Outcome(
        state=state,
        exit_code=witness.get("exit_code"),
        signal=witness.get("signal"),
        reason=f"{said}; {why}" if said else why,
        finished_at=now,
        stdout_bytes=stdout,
        stderr_bytes=stderr,
        output_capped=bool(witness.get("output_capped")),
    )


def live_lease(node_id: UUID, now: datetime) -> sa.ColumnElement[bool]:
    """`node_id` holds a lease that has not lapsed at `now` (and was not reaped)."""
    return sa.and_(
        nodes.c.id == node_id, nodes.c.lease_expires_at > now, nodes.c.down_since.is_(None)
    )


class NodeOps(SqlBase):
    """register_node, renew_lease, deregister_node, list_nodes, reap."""

    async def _check_alive(self, tx: Tx, node_id: UUID, now: datetime) -> None:
        """Raises `Fenced` unless `node_id` holds a live lease at `now`."""
        alive = await tx.run(sa.select(nodes.c.id).where(live_lease(node_id, now)))
        if alive.first() is None:
            raise Fenced(f"node {node_id} has no live lease")

    async def register_node(
        self, *, name: str, tags: frozenset[str], capacity: int, ttl: float, now: datetime
    ) -> Node:
        node = Node(
            id=uuid4(),
            name=name,
            tags=tags,
            capacity=capacity,
            started_at=now,
            heartbeat_at=now,
            lease_expires_at=now + timedelta(seconds=ttl),
        )
        async with self._write() as tx:
            await tx.run(
                nodes.insert().values(
                    id=node.id,
                    name=name,
                    tags=rows.tags_value(tags),
                    capacity=capacity,
                    started_at=now,
                    heartbeat_at=now,
                    lease_expires_at=node.lease_expires_at,
                )
            )
        return node

    async def renew_lease(self, node_id: UUID, *, ttl: float, now: datetime) -> list[UUID]:
        c = executions.c
        async with self._write(self._lease) as tx:
            renewed = await tx.run(
                nodes.update()
                .where(live_lease(node_id, now))
                .values(heartbeat_at=now, lease_expires_at=now + timedelta(seconds=ttl))
            )
            if renewed.rowcount == 0:
                raise Fenced(f"lease of node {node_id} expired before {now.isoformat()}")
            stops = await tx.run(sa.select(c.id).where(_running_on(node_id), c.stop_requested))
            return [r[0] for r in stops]

    async def running_on(self, node_id: UUID) -> list[UUID]:
        found = await self._read(sa.select(executions.c.id).where(_running_on(node_id)))
        return [r["id"] for r in found]

    async def deregister_node(self, node_id: UUID, *, now: datetime) -> None:
        busy = sa.exists().where(_running_on(node_id))
        at = sa.literal(now, nodes.c.down_since.type)
        async with self._write() as tx:
            gone = await tx.run(
                nodes.update()
                .where(nodes.c.id == node_id, ~busy)
                .values(
                    down_since=sa.func.coalesce(nodes.c.down_since, at),
                    down_reason=sa.func.coalesce(nodes.c.down_reason, "left the cluster"),
                    lease_expires_at=sa.case(
                        (nodes.c.lease_expires_at > now, at), else_=nodes.c.lease_expires_at
                    ),
                )
            )
            if gone.rowcount == 0:
                left = await tx.run(sa.select(sa.func.count()).where(_running_on(node_id)))
                count = left.scalar_one()
                if count:
                    raise Conflict(f"node {node_id} still has {count} running executions")
        await self._release_node_lock()

    async def list_nodes(self, *, now: datetime) -> list[Node]:
        running = (
            sa.select(sa.func.count())
            .where(executions.c.node_id == nodes.c.id, executions.c.state == RUNNING)
            .scalar_subquery()
        )
        found = await self._read(
            sa.select(nodes, running.label("running")).order_by(nodes.c.name, nodes.c.id)
        )
        return [rows.row_to_node(r, r["running"]) for r in found]

    async def reap(
        self, *, now: datetime, retry: RetryDecider, keep_down: timedelta = DOWN_RETENTION
    ) -> list[Execution]:
        expired = await self._read(
            sa.select(nodes.c.id)
            .where(nodes.c.lease_expires_at <= now, nodes.c.down_since.is_(None))
            .order_by(nodes.c.id)
        )
        lost: list[Execution] = []
        for row in expired:
            lost.extend(await self._reap_node(row["id"], now, retry))
        stale = nodes.c.down_since < now - keep_down
        if await self._read(sa.select(nodes.c.id).where(stale).limit(1)):
            async with self._write() as tx:
                await tx.run(nodes.delete().where(stale))
        return lost

    async def _vouched_ends(self, tx: Tx, node_id: UUID, name: str, now: datetime) -> list[Finish]:
        c = executions.c
        found = (
            (
                await tx.run(
                    sa.select(c.id, c.witness).where(_running_on(node_id), c.witness.is_not(None))
                )
            )
            .mappings()
            .all()
        )
        if not found:
            return []
        chunks = output_chunks.c
        stored: dict[tuple[UUID, str], int] = {
            (r["execution_id"], r["stream"]): int(r["bytes"])
            for r in (
                await tx.run(
                    sa.select(
                        chunks.execution_id,
                        chunks.stream,
                        sa.func.sum(sa.func.length(chunks.data)).label("bytes"),
                    )
                    .where(chunks.execution_id.in_([r["id"] for r in found]))
                    .group_by(chunks.execution_id, chunks.stream)
                )
            ).mappings()
        }
        return [
            Finish(
                execution_id=r["id"],
                outcome=vouched_outcome(
                    r["witness"],
                    name,
                    now,
                    stdout=stored.get((r["id"], "stdout"), 0),
                    stderr=stored.get((r["id"], "stderr"), 0),
                ),
            )
            for r in found
        ]

    async def _reap_node(
        self, node_id: UUID, now: datetime, retry: RetryDecider
    ) -> list[Execution]:
        async with self._write() as tx:
            # The row lock makes concurrent reapers of this node take turns; whoever comes
            # second finds the row gone (or skips it while it is locked) and does nothing.
            locked = await tx.run(
                sa.select(nodes.c.name)
                .where(
                    nodes.c.id == node_id,
                    nodes.c.lease_expires_at <= now,
                    nodes.c.down_since.is_(None),
                )
                .with_for_update(skip_locked=True)
            )
            name = locked.scalar_one_or_none()
            if name is None:
                return []
            reason = f"node {name} lease expired"
            # Its runs' rows first, in id order, before any job row: the same order as
            # every other writer of run rows, and no job row is held while waiting.
            await tx.run(
                sa.select(executions.c.id)
                .where(_running_on(node_id))
                .order_by(executions.c.id)
                .with_for_update()
            )
            # Ends its supervisor vouched for while the lease held are ends, not losses.
            vouched = await self._vouched_ends(tx, node_id, name, now)
            settled = (
                await self._end_runs(tx, vouched, node_id, retry, settle=False) if vouched else []
            )
            ended = [r for r in settled if r is not None]
            result = await tx.run(
                executions.update()
                .where(_running_on(node_id))
                .values(state=str(RunState.LOST), reason=reason, finished_at=now)
                .returning(*executions.c)
            )
            lost = [rows.row_to_execution(r) for r in result.mappings()]
            retried: set[UUID] = set()
            for ex in lost:
                if await self._queue_retry(tx, ex, retry, now) is not None:
                    retried.add(ex.id)
                tx.note("output", str(ex.id))
            if lost:
                await tx.run(
                    events.insert(),
                    [
                        rows.event_values(
                            Event(
                                id=0,
                                at=now,
                                kind="run.lost",
                                owner=ex.owner,
                                job_id=ex.job_id,
                                execution_id=ex.id,
                                message=reason,
                            )
                        )
                        for ex in lost
                    ],
                )
                tx.note("events")
            # Job rows last and by id, the order every writer takes them in (finish_many
            # too), so a reaper and a finisher wait for each other but never deadlock.
            # A lost run with no retry after it is a failure: told in this transaction
            # (the outbox locks the same job rows first, in the same order).
            # One ordered pass over the job rows for the vouched ends and the losses.
            await react_to_ends(
                self,
                tx,
                [(ex, again is not None) for ex, again in ended]
                + [(ex, ex.id in retried) for ex in lost],
                now,
            )
            await self._tally(tx, [ex for ex, _ in ended] + lost)
            await tx.run(
                nodes.update()
                .where(nodes.c.id == node_id)
                .values(down_since=now, down_reason=reason)
            )
        return lost
