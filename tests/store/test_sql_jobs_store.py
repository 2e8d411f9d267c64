"""Contract: a SQL job's RunSpec.sql survives the store (job, queued run, claimed run),
on both backends."""

from __future__ import annotations

from dataclasses import replace

from storekit import ALICE, NOW, at, spec

from cronhive.engine import executions as new
from cronhive.model import RunSpec, SqlSpec
from cronhive.store import Store

SQL = SqlSpec(
    statement="INSERT INTO t VALUES ('é', E'\\n'); SELECT 1",
    database="warehouse",
    role="Etl Role",
    autocommit=True,
)


async def test_sql_spec_round_trips_through_jobs_and_runs(store: Store) -> None:
    base = spec("vacuum")
    sql_run = RunSpec(command=(), timeout=2.0, sql=SQL)
    job = await store.create_job(
        replace(base, run=sql_run), next_fire_at=None, created_by=ALICE, now=NOW
    )
    assert (await store.get_job(job.id, visible_to=None)).spec.run == sql_run
    queued = await store.enqueue(new.triggered(job, NOW))
    assert (await store.get_execution(queued.id, visible_to=None)).run.sql == SQL
    node = await store.register_node(name="n", tags=frozenset(), capacity=1, ttl=30, now=NOW)
    [claimed] = await store.claim(node.id, frozenset(), 1, at(1))
    assert (claimed.id, claimed.run) == (queued.id, sql_run)
    # Back to a command: the SQL is gone, not left behind.
    changed = await store.update_job(job.id, base, next_fire_at=None, visible_to=None, now=at(2))
    assert changed.spec.run.sql is None and changed.spec.run.command == base.run.command
    # An ad-hoc SQL run, too.
    adhoc = await store.enqueue(new.adhoc(ALICE, sql_run, NOW))
    assert (await store.get_execution(adhoc.id, visible_to=None)).run.sql == SQL
