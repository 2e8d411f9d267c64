"""An action and its event commit together: with the event's insert killed inside the
transaction (an error raised by a trigger, or on PostgreSQL the backend terminated at
that moment), every operation leaves neither its change nor its event; healed, each
leaves both."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pytest
from servicekit import ADMIN, ALICE, Backend

from cronhive.errors import StoreError
from cronhive.model import DeliveryState, Event, Job, JobSpec, RunSpec, RunState
from cronhive.schedule import parse_schedule
from cronhive.service import Draft, Service
from cronhive.store import Finish


def _spec(name: str, **kw: Any) -> JobSpec:
    return JobSpec(name=name, owner=ALICE.owner, run=RunSpec(command=("true",)), **kw)


async def _events(svc: Service) -> list[Event]:
    return await svc.store.list_events(visible_to=None, limit=10_000)


@dataclass
class Case:
    """One operation: `act` does it, `done` says whether its change is stored."""

    kind: str
    act: Callable[[], Awaitable[Any]]
    done: Callable[[], Awaitable[bool]]


async def _cases(svc: Service) -> list[Case]:
    store = svc.store
    delivery = await _failed_delivery(svc)
    job = await svc.create_job(ALICE, Draft.of(_spec("base")))
    paused = await svc.create_job(ALICE, Draft.of(_spec("paused", enabled=False)))
    doomed = await svc.create_job(ALICE, Draft.of(_spec("doomed")))
    queued = await svc.trigger(ALICE, job.id)
    token, _ = await svc.create_token(ALICE, name="old", days=None, groups=())
    hourly = parse_schedule("cron", "0 * * * *")

    async def job_named(name: str) -> bool:
        return any(j.name == name for j in await store.list_jobs(visible_to=None))

    async def job_of(job_id: UUID) -> Job:
        return await store.get_job(job_id, visible_to=None)

    async def runs_of(job_id: UUID | None) -> int:
        return len([e for e in await store.list_executions(visible_to=None) if e.job_id == job_id])

    return [
        Case(
            "job.created",
            lambda: svc.create_job(ALICE, Draft.of(_spec("new", schedule=hourly))),
            lambda: job_named("new"),
        ),
        Case(
            "job.updated",
            lambda: svc.update_job(
                ALICE, job.id, lambda s: Draft.of(_spec("base", description="changed"))
            ),
            lambda: _is(job_of(job.id), lambda j: j.spec.description == "changed"),
        ),
        Case(
            "job.paused",
            lambda: svc.set_enabled(ALICE, job.id, False),
            lambda: _is(job_of(job.id), lambda j: not j.spec.enabled),
        ),
        Case(
            "job.resumed",
            lambda: svc.set_enabled(ALICE, paused.id, True),
            lambda: _is(job_of(paused.id), lambda j: j.spec.enabled),
        ),
        Case(
            "job.deleted",
            lambda: svc.delete_job(ALICE, doomed.id),
            lambda: _is(job_named("doomed"), lambda there: not there),
        ),
        Case(
            "run.queued",
            lambda: svc.trigger(ALICE, job.id, {"X": "1"}),
            lambda: _is(runs_of(job.id), lambda n: n == 2),
        ),
        Case(
            "run.queued",
            lambda: svc.start_run(ALICE, "", RunSpec(command=("true",))),
            lambda: _is(runs_of(None), lambda n: n == 1),
        ),
        Case(
            "run.stop",
            lambda: svc.stop_run(ALICE, queued.id),
            lambda: _is(
                store.get_execution(queued.id, visible_to=None),
                lambda e: e.state is RunState.STOPPED,
            ),
        ),
        Case(
            "notification.retried",
            lambda: svc.retry_notification(ADMIN, delivery),
            lambda: _is(
                store.get_delivery(delivery, visible_to=None),
                lambda d: d.state is DeliveryState.PENDING,
            ),
        ),
        Case(
            "notify.defaults",
            lambda: svc.set_notify_defaults(ALICE, "", {"failure": ["ops"]}),
            lambda: _is(store.notify_defaults(visible_to=None), lambda d: ALICE.owner in d),
        ),
        Case(
            "token.created",
            lambda: svc.create_token(ALICE, name="new", days=1, groups=()),
            lambda: _is(store.list_tokens("alice"), lambda ts: any(t.name == "new" for t in ts)),
        ),
        Case(
            "token.revoked",
            lambda: svc.revoke_token(ALICE, str(token.id)),
            lambda: _is(
                store.list_tokens("alice"),
                lambda ts: any(t.id == token.id and t.revoked_at for t in ts),
            ),
        ),
        Case(
            "script.stored",
            lambda: svc.upload_script(ALICE, "", "s.sh", b"#!/bin/sh\necho hi\n"),
            lambda: _is(_scripts(svc), lambda n: n == 1),
        ),
    ]


async def _is(value: Awaitable[Any], test: Callable[[Any], bool]) -> bool:
    return test(await value)


async def _scripts(svc: Service) -> int:
    from cronhive.blobs.scripts import digest_of

    try:
        await svc.store.find_script(digest_of(b"#!/bin/sh\necho hi\n"), visible_to=None)
    except LookupError:
        return 0
    return 1


async def _failed_delivery(svc: Service) -> UUID:
    """A failed notification of one of ALICE's jobs (its failure, given up on)."""
    store, now = svc.store, datetime.now(UTC)
    spec = _spec("noisy", notify={"failure": ("ops",)})
    job = await store.create_job(spec, next_fire_at=None, created_by="alice", now=now)
    node = await store.register_node(name="n", tags=frozenset(), capacity=1, ttl=60, now=now)
    run = await svc.trigger(ALICE, job.id)
    now = datetime.now(UTC)
    [claimed] = await store.claim(node.id, frozenset(), 1, now)
    assert claimed.id == run.id
    from cronhive.model import Outcome

    failed = Outcome(state=RunState.FAILED, exit_code=1, finished_at=now)
    end = Finish(execution_id=run.id, outcome=failed)
    await store.finish_many([end], node_id=node.id, retry=lambda _: None)
    [d] = await store.claim_deliveries(node.id, targets=("ops",), limit=1, claim_for=60, now=now)
    await store.settle_delivery(d.id, node_id=node.id, now=now, error="given up")
    return d.id


async def test_an_event_and_its_action_commit_together(backend: Backend) -> None:
    svc = backend.service
    cases = await _cases(svc)
    before = await _events(svc)
    backend.kill_events()
    for case in cases:
        with pytest.raises(StoreError):
            await case.act()
        assert not await case.done(), f"{case.kind}: the action stayed without its event"
    assert await _events(svc) == before
    backend.heal()
    for case in cases:
        await case.act()
        assert await case.done(), case.kind
    kinds = [e.kind for e in (await _events(svc))[len(before) :]]
    assert kinds == [c.kind for c in cases]
