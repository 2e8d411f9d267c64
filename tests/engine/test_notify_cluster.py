"""Reactions across `cronhive server` processes on one real PostgreSQL: a delivery held
by a node that is SIGKILLed is taken over, and 100 events on 3 nodes reach the receiver
exactly once each."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from enginekit import create_job, job_spec, node_logs, spawn_node, wait_for
from notifykit import SECRET, Receiver, http_receiver, signature_ok

from cronhive.engine.executions import triggered
from cronhive.model import DeliveryState, Job
from cronhive.store import Store, open_store

pytestmark = pytest.mark.slow


@pytest.fixture
async def pg_store(pg_database: Callable[[str | None], str]) -> AsyncIterator[Store]:
    store = await open_store(pg_database(None))
    yield store
    await store.close()


@pytest.fixture
def nodes() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait(10)


def _spawn(store: Store, tmp_path: Path, name: str, receiver: Receiver) -> subprocess.Popen[bytes]:
    config = tmp_path / f"{name}.toml"
    config.write_text(f'[notify.hook]\nwebhook = "{receiver.url}"\nsecret = "{SECRET}"\n')
    url: str = store.url  # type: ignore[attr-defined]
    # Unisolated: these runs are `false`, many at once; isolation is not what is tested.
    extra = ("--config", str(config), "--isolation", "none")
    return spawn_node(url, tmp_path, name, extra=extra)


async def _nodes_up(store: Store, n: int) -> None:
    async def up() -> bool:
        now = datetime.now(UTC)
        return sum(1 for x in await store.list_nodes(now=now) if x.alive(now)) >= n

    await wait_for(up, within=60)


async def _failing_job(store: Store) -> Job:
    spec = replace(job_spec(("false",)), notify={"failure": ("hook",)})
    return await create_job(store, spec, datetime.now(UTC))


async def test_a_node_killed_holding_a_delivery_is_taken_over_and_delivered_once(
    pg_store: Store, tmp_path: Path, nodes: list[subprocess.Popen[bytes]]
) -> None:
    job = await _failing_job(pg_store)
    with http_receiver(hold_first=True) as receiver:
        nodes.append(_spawn(pg_store, tmp_path, "a", receiver))
        await _nodes_up(pg_store, 1)
        await pg_store.enqueue(triggered(job, datetime.now(UTC)))

        async def sending() -> bool:
            return receiver.arrived == 1

        await wait_for(sending, within=30)  # node a is mid-POST, holding the claim
        [held] = await pg_store.list_deliveries(visible_to=None, job_id=job.id)
        [a] = await pg_store.list_nodes(now=datetime.now(UTC))
        assert (held.state, held.claimed_by, held.attempts) == (DeliveryState.DELIVERING, a.id, 1)
        os.kill(nodes[0].pid, signal.SIGKILL)
        nodes[0].wait(10)
        nodes.append(_spawn(pg_store, tmp_path, "b", receiver))

        async def delivered() -> bool:
            [d] = await pg_store.list_deliveries(visible_to=None, job_id=job.id)
            return d.state is DeliveryState.DELIVERED

        try:
            await wait_for(delivered, within=60)
        except AssertionError:
            raise AssertionError(node_logs(tmp_path)) from None
        [done] = await pg_store.list_deliveries(visible_to=None, job_id=job.id)
        receiver.release.set()
    assert done.attempts == 2 and done.last_error is None
    [ok] = receiver.delivered()  # one answered delivery, from node b
    assert signature_ok(SECRET, ok.body, ok.headers["X-Cronhive-Signature"])
    assert ok.headers["X-Cronhive-Delivery"] == str(done.id)
    assert ok.json["run"]["state"] == "failed"
    # The POST node a sent before it died carried the same delivery id: a receiver that
    # keys on it counts one delivery.
    assert receiver.arrived == 2
    assert {h.headers["X-Cronhive-Delivery"] for h in receiver.hits} == {str(done.id)}


async def test_three_nodes_deliver_each_of_100_failures_exactly_once(
    pg_store: Store, tmp_path: Path, nodes: list[subprocess.Popen[bytes]]
) -> None:
    job = await _failing_job(pg_store)
    with http_receiver() as receiver:
        for name in ("a", "b", "c"):
            nodes.append(_spawn(pg_store, tmp_path, name, receiver))
        await _nodes_up(pg_store, 3)
        runs = [await pg_store.enqueue(triggered(job, datetime.now(UTC))) for _ in range(100)]

        async def all_delivered() -> bool:
            found = await pg_store.list_deliveries(visible_to=None, job_id=job.id, limit=1000)
            return len(found) == 100 and all(d.state is DeliveryState.DELIVERED for d in found)

        try:
            await wait_for(all_delivered, within=180, every=0.5)
        except AssertionError:
            raise AssertionError(node_logs(tmp_path)) from None
        await asyncio.sleep(1.0)  # anything sent twice would arrive by now
        hits = list(receiver.hits)
    per_delivery = Counter(h.headers["X-Cronhive-Delivery"] for h in hits)
    assert len(per_delivery) == 100 and set(per_delivery.values()) == {1}
    per_run = Counter(h.json["run"]["id"] for h in hits)
    assert set(per_run) == {str(r.id) for r in runs} and set(per_run.values()) == {1}
    assert all(signature_ok(SECRET, h.body, h.headers["X-Cronhive-Signature"]) for h in hits)
    senders = Counter(h.json["run"]["node"] for h in hits)  # where each run ran
    assert len(senders) >= 2, senders
