"""Reactions end to end on a real node: signed webhooks to a real HTTP receiver, retries,
recovery, missed slots, chained jobs and mail to a real SMTP server."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from enginekit import (
    create_job,
    executions_of,
    free_port,
    job_spec,
    running_node,
    terminal,
    wait_for,
)
from notifykit import SECRET, http_receiver, signature_ok, smtp_server

from cronhive.engine.deliverer import Deliverer
from cronhive.engine.executions import triggered
from cronhive.engine.node import NodeProcess
from cronhive.errors import InvalidInput
from cronhive.model import DeliveryState, Execution, Job, JobSpec, Misfire, NotifyOn, Stream
from cronhive.notify import Chain, Mail, Smtp, Targets, Webhook, check_notify
from cronhive.store import Store


def hook(url: str) -> Webhook:
    return Webhook(name="hook", url=url, secret=SECRET.encode(), timeout=5.0)


@contextlib.asynccontextmanager
async def delivering(store: Store, tmp_path: Path, targets: Targets) -> AsyncIterator[NodeProcess]:
    """A node with the real deliverer beside it, as `cronhive server` runs it."""
    async with running_node(store, tmp_path) as node:
        deliverer = Deliverer(
            store,
            node.clock,
            node.hub,
            lambda: node.node.id,
            targets,
            base_url="https://cronhive.test",
        )
        task = asyncio.create_task(deliverer.run())
        try:
            yield node
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def run_once(store: Store, job: Job) -> Execution:
    ex = await store.enqueue(triggered(job, datetime.now(UTC)))
    await wait_for(lambda: terminal(store, ex.id))
    return await store.get_execution(ex.id, visible_to=None)


def with_notify(spec: JobSpec, **notify: tuple[str, ...]) -> JobSpec:
    return replace(spec, notify=notify)


async def test_failure_posts_one_signed_webhook_and_recovery_fires_once(
    store: Store, tmp_path: Path
) -> None:
    flag = tmp_path / "fixed"
    script = f"test -e {flag} && echo fine || {{ echo boom; exit 3; }}"
    spec = with_notify(job_spec(("sh", "-c", script)), failure=("hook",), recovery=("hook",))
    job = await create_job(store, spec, datetime.now(UTC))
    with http_receiver() as receiver:
        async with delivering(store, tmp_path, Targets({"hook": hook(receiver.url)})):
            failed = await run_once(store, job)
            await wait_for(lambda: _hits(receiver, 1))
            [hit] = receiver.hits
            assert signature_ok(SECRET, hit.body, hit.headers["X-Cronhive-Signature"])
            assert not signature_ok(
                "another-secret-entirely", hit.body, hit.headers["X-Cronhive-Signature"]
            )
            body = hit.json
            assert body["event"] == "failure" and hit.headers["X-Cronhive-Event"] == "failure"
            assert body["job"] == {"id": str(job.id), "name": job.name}
            run = body["run"]
            assert (run["id"], run["state"], run["exit_code"]) == (str(failed.id), "failed", 3)
            assert run["node"] == "n1" and run["finished_at"]
            assert "boom" in body["output_tail"]
            assert body["links"]["run"] == f"https://cronhive.test/runs/{failed.id}"
            assert SECRET not in hit.body.decode()
            await run_once(store, job)  # fails again: a second failure
            flag.touch()
            recovered = await run_once(store, job)
            await run_once(store, job)  # a later success: no recovery
            await wait_for(lambda: _hits(receiver, 3))
            found = await store.list_deliveries(visible_to=None, job_id=job.id)
            # The outbox row is written with the run's end: the 4th run's absence is final.
            assert sorted(str(d.event) for d in found) == ["failure", "failure", "recovery"]
            await wait_for(lambda: _all_delivered(store, job))
    events = [h.json["event"] for h in receiver.hits]
    assert events == ["failure", "failure", "recovery"]
    assert receiver.hits[2].json["run"]["id"] == str(recovered.id)


async def _hits(receiver: object, n: int) -> bool:
    return len(receiver.hits) >= n  # type: ignore[attr-defined]


async def _all_delivered(store: Store, job: Job) -> bool:
    found = await store.list_deliveries(visible_to=None, job_id=job.id)
    return bool(found) and all(d.state is DeliveryState.DELIVERED for d in found)


async def test_a_receiver_failing_twice_gets_three_attempts_and_one_success(
    store: Store, tmp_path: Path
) -> None:
    spec = with_notify(job_spec(("false",)), failure=("hook",))
    job = await create_job(store, spec, datetime.now(UTC))
    with http_receiver([500, 500]) as receiver:
        async with delivering(store, tmp_path, Targets({"hook": hook(receiver.url)})):
            await run_once(store, job)
            await wait_for(lambda: _all_delivered(store, job), within=30)
            [d] = await store.list_deliveries(visible_to=None, job_id=job.id)
    assert [h.status for h in receiver.hits] == [500, 500, 200]
    assert len({h.headers["X-Cronhive-Delivery"] for h in receiver.hits}) == 1
    assert (d.state, d.attempts, d.last_error) == (DeliveryState.DELIVERED, 3, None)


async def test_an_unreachable_receiver_is_retried_and_its_url_never_recorded(
    store: Store, tmp_path: Path
) -> None:
    spec = with_notify(job_spec(("false",)), failure=("hook",))
    job = await create_job(store, spec, datetime.now(UTC))
    closed = free_port()  # nothing listens there
    target = hook(f"http://127.0.0.1:{closed}/T0KEN-in-the-url")
    async with delivering(store, tmp_path, Targets({"hook": target})):
        await run_once(store, job)

        async def retried() -> bool:
            found = await store.list_deliveries(visible_to=None, job_id=job.id)
            return bool(found) and found[0].attempts >= 2

        await wait_for(retried, within=30)
    [d] = await store.list_deliveries(visible_to=None, job_id=job.id)
    assert d.state in (DeliveryState.PENDING, DeliveryState.DELIVERING)
    assert d.last_error and "T0KEN" not in d.last_error


async def test_slots_missed_while_no_node_ran_notify_on_missed(
    store: Store, tmp_path: Path
) -> None:
    spec = with_notify(
        job_spec(("true",), schedule="* * * * *", misfire=Misfire.SKIP), missed=("hook",)
    )
    now = datetime.now(UTC)
    assert spec.schedule is not None
    # Every node was down through the last three slots: the job is three slots behind.
    first = spec.schedule.next_after(now - timedelta(minutes=3, seconds=30))
    assert first is not None
    job = await store.create_job(spec, next_fire_at=first, created_by="alice", now=now)
    with http_receiver() as receiver:
        async with delivering(store, tmp_path, Targets({"hook": hook(receiver.url)})):
            await wait_for(lambda: _hits(receiver, 1))
    [hit] = receiver.hits
    body = hit.json
    assert body["event"] == "missed" and body["run"]["state"] == "skipped"
    assert body["missed"]["count"] >= 3 and body["missed"]["first"] == first.isoformat()
    skipped = [e for e in await executions_of(store, job.id) if str(e.state) == "skipped"]
    assert len(skipped) == body["missed"]["count"]


async def test_a_chain_runs_b_once_per_success_of_a_with_as_run_in_bs_env(
    store: Store, tmp_path: Path
) -> None:
    targets = Targets({"then-b": Chain(name="then-b", owner="user:alice", job="b")})
    show = 'echo "$CRONHIVE_TRIGGER_RUN $CRONHIVE_TRIGGER_JOB $CRONHIVE_TRIGGER_STATE"'
    b = await create_job(store, job_spec(("sh", "-c", show), name="b"), datetime.now(UTC))
    flag = tmp_path / "fail"
    a_spec = with_notify(job_spec(("sh", "-c", f"test ! -e {flag}"), name="a"), success=("then-b",))
    await check_notify(a_spec, targets, store, None)
    a = await create_job(store, a_spec, datetime.now(UTC))
    async with delivering(store, tmp_path, targets):
        first = await run_once(store, a)
        second = await run_once(store, a)
        flag.touch()
        await run_once(store, a)  # a failure of A: no run of B

        async def b_ran_twice() -> bool:
            runs = await executions_of(store, b.id)
            return len(runs) == 2 and all(r.state.terminal for r in runs)

        await wait_for(b_ran_twice)
        await wait_for(lambda: _all_delivered(store, a))
        runs_of_b = await executions_of(store, b.id)
    outputs = set()
    for run in runs_of_b:
        chunks = await store.read_output(run.id, streams={Stream.STDOUT})
        outputs.add(b"".join(c.data for c in chunks).decode().strip())
    assert outputs == {
        f"{first.id} user:alice/a succeeded",
        f"{second.id} user:alice/a succeeded",
    }
    assert all(r.run.env["CRONHIVE_TRIGGER_DEPTH"] == "1" for r in runs_of_b)
    deliveries = await store.list_deliveries(visible_to=None, job_id=a.id)
    assert [d.event for d in deliveries] == [NotifyOn.SUCCESS, NotifyOn.SUCCESS]


async def test_a_chain_stops_at_the_depth_limit(store: Store, tmp_path: Path) -> None:
    targets = Targets({"then-c": Chain(name="then-c", owner="user:alice", job="c")})
    c = await create_job(store, job_spec(("true",), name="c"), datetime.now(UTC))
    deep = job_spec(("true",), name="b")
    # B runs as the 10th link of a chain (what the deliverer puts in a chained run's env).
    deep = replace(deep, run=replace(deep.run, env={"CRONHIVE_TRIGGER_DEPTH": "10"}))
    b = await create_job(store, with_notify(deep, success=("then-c",)), datetime.now(UTC))
    async with delivering(store, tmp_path, targets):
        await run_once(store, b)

        async def settled() -> bool:
            found = await store.list_deliveries(visible_to=None, job_id=b.id)
            return bool(found) and found[0].state is DeliveryState.FAILED

        await wait_for(settled)
    [d] = await store.list_deliveries(visible_to=None, job_id=b.id)
    assert d.attempts == 1 and "chain depth limit 10" in (d.last_error or "")
    assert await executions_of(store, c.id) == []


async def test_unknown_targets_and_chain_cycles_are_refused_at_create(store: Store) -> None:
    targets = Targets(
        {
            "then-a": Chain(name="then-a", owner="user:alice", job="a"),
            "then-b": Chain(name="then-b", owner="user:alice", job="b"),
            "then-c": Chain(name="then-c", owner="user:alice", job="c"),
        }
    )
    now = datetime.now(UTC)
    with pytest.raises(InvalidInput, match="unknown target 'ops'"):
        await check_notify(with_notify(job_spec(("true",)), failure=("ops",)), targets, store, None)
    with pytest.raises(InvalidInput, match="chain cycle user:alice/a -> user:alice/a"):
        await check_notify(
            with_notify(job_spec(("true",), name="a"), success=("then-a",)), targets, store, None
        )
    # b -> c exists, c -> a exists; a -> b would close the loop a -> b -> c -> a.
    await create_job(store, with_notify(job_spec(("true",), name="c"), failure=("then-a",)), now)
    await create_job(store, with_notify(job_spec(("true",), name="b"), success=("then-c",)), now)
    a = with_notify(job_spec(("true",), name="a"), success=("then-b",))
    with pytest.raises(
        InvalidInput, match=r"user:alice/a -> user:alice/b -> user:alice/c -> user:alice/a"
    ):
        await check_notify(a, targets, store, None)
    with pytest.raises(InvalidInput, match="may not see"):
        await check_notify(
            with_notify(job_spec(("true",), name="x"), success=("then-b",)),
            targets,
            store,
            frozenset({"user:bob"}),
        )


async def test_mail_reaches_a_real_smtp_server_with_job_state_and_output_tail(
    store: Store, tmp_path: Path
) -> None:
    spec = with_notify(
        job_spec(("sh", "-c", "echo disk full >&2; exit 1"), name="backup"), failure=("oncall",)
    )
    job = await create_job(store, spec, datetime.now(UTC))
    with smtp_server() as (port, inbox):
        smtp = Smtp(host="127.0.0.1", port=port, sender="cronhive@example.test", timeout=10)
        targets = Targets({"oncall": Mail(name="oncall", to="oncall@example.test", smtp=smtp)})
        async with delivering(store, tmp_path, targets):
            run = await run_once(store, job)
            await wait_for(lambda: _all_delivered(store, job))
    [mail] = inbox
    assert mail["To"] == "oncall@example.test" and mail["From"] == "cronhive@example.test"
    assert mail["Subject"] == "[cronhive] user:alice/backup: failed (failure)"
    text = mail.get_payload()
    assert isinstance(text, str)
    assert str(run.id) in text and "disk full" in text and "exit code: 1" in text


async def test_the_output_tail_of_an_archived_run_comes_from_the_archive(
    store: Store, tmp_path: Path
) -> None:
    from cronhive.blobs.local import LocalBlobs
    from cronhive.engine.archiver import Archiver

    script = "seq 1 20000; echo the last line; echo oops >&2; exit 3"
    spec = with_notify(job_spec(("sh", "-c", script)), failure=("hook",))
    job = await create_job(store, spec, datetime.now(UTC))
    blobs = LocalBlobs(tmp_path / "blobs")
    with http_receiver() as receiver:
        async with running_node(store, tmp_path) as node:
            failed = await run_once(store, job)
            assert await Archiver(store, blobs).archive(failed.id)  # chunks now in blobs
            assert await store.output_tail(failed.id) == []
            deliverer = Deliverer(
                store,
                node.clock,
                node.hub,
                lambda: node.node.id,
                Targets({"hook": hook(receiver.url)}),
                blobs=blobs,
            )
            task = asyncio.create_task(deliverer.run())
            try:
                await wait_for(lambda: _hits(receiver, 1))
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
    [hit] = receiver.hits
    tail = hit.json["output_tail"]
    assert "the last line" in tail and "oops" in tail and len(tail) <= 4096
