"""The deliverer: every node claims due notifications from the outbox, sends them, and
records what happened.

Claims are rows (store.claim_deliveries), so nodes split the outbox without talking to
each other, and a node that dies holding a claim loses it with its lease: another node
sends it again. A webhook receiver may therefore see one delivery twice if the first
node died after sending but before recording; every attempt carries the same
`X-Cronhive-Delivery` id for it to drop the repeat. A chained job is triggered under an
execution id derived from the delivery id, so a second attempt can never queue a second
run.

Errors, timeouts and 5xx answers are retried with exponential backoff and full jitter,
up to `MAX_ATTEMPTS`; a 4xx (other than 408/429) or a chain refused is final.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID

from cronhive.blobs import BlobStore
from cronhive.engine import executions as new
from cronhive.engine.clock import Clock
from cronhive.engine.hub import Hub
from cronhive.engine.node import NodeContext
from cronhive.engine.output import follow_output, wait_any
from cronhive.errors import Conflict, CronhiveError, NotFound
from cronhive.model import Delivery, Event, Execution, Stream
from cronhive.notify import Chain, Mail, Targets, Webhook
from cronhive.store import Store
from cronhive.store._outbox import DEPTH_ENV

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)

BATCH = 16  # deliveries claimed at once
POLL = 1.0  # seconds between looks at the outbox without a wake-up (retries coming due)
MAX_ATTEMPTS = 8
BACKOFF_FIRST, BACKOFF_MAX = 1.0, 300.0
MAX_CHAIN_DEPTH = 10  # a chain A -> B -> ... stops here, whatever the configuration says
TAIL_BYTES = 4096
_CHAIN_IDS = uuid.UUID("6b1c3c1e-4e0a-4d3e-9a57-0d2b8f1c7e21")  # uuid5 namespace


class Refused(Exception):
    """A delivery another attempt cannot fix."""


def _permanent(exc: Exception) -> bool:
    """An answer another attempt cannot change (a 4xx, recipients refused)."""
    from cronhive.notify import _mail as mail
    from cronhive.notify import _webhook as webhook

    return isinstance(exc, (webhook.Permanent, *mail.PERMANENT))


def backoff(attempts: int, rng: random.Random | None = None) -> float:
    """Seconds before the next attempt after `attempts` (1 = the first failed)."""
    base = min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** max(0, attempts - 1))
    return (rng or random).uniform(base / 2, base)


def chain_run_id(delivery_id: UUID) -> UUID:
    """The execution id of the run a chain delivery triggers: the same on every attempt."""
    return uuid.uuid5(_CHAIN_IDS, str(delivery_id))


class Deliverer:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        hub: Hub,
        node_id: Callable[[], UUID],
        targets: Targets,
        *,
        base_url: str | None = None,
        claim_for: float = 120.0,
        blobs: BlobStore | None = None,  # where archived output is read back from
    ) -> None:
        self._store = store
        self._clock = clock
        self._hub = hub
        self._blobs = blobs
        self._node_id = node_id
        self._targets = targets
        self._base_url = base_url
        self._claim_for = claim_for
        self._client: httpx.AsyncClient | None = None  # made at the first webhook

    async def run(self) -> None:
        if not self._targets.names():
            return  # nothing this node could send: leave the outbox to nodes that can
        try:
            with self._hub.subscribe("deliveries") as woke:
                while True:
                    woke.clear()
                    try:
                        got = await self.deliver_due()
                    except CronhiveError as exc:
                        log.warning("delivering notifications failed (%s); retrying", exc)
                        got = 0
                    if got < BATCH:
                        await wait_any([woke], POLL)
        finally:
            if self._client is not None:
                await self._client.aclose()

    async def deliver_due(self) -> int:
        """Claims and sends one batch; returns how many were claimed."""
        claimed = await self._store.claim_deliveries(
            self._node_id(),
            targets=self._targets.names(),
            limit=BATCH,
            claim_for=self._claim_for,
            now=self._clock.now(),
        )
        if claimed:
            await asyncio.gather(*(self._deliver(d) for d in claimed))
        return len(claimed)

    async def _deliver(self, d: Delivery) -> None:
        error: str | None = None
        retry_at = None
        try:
            await self._send(d)
        except Refused as exc:
            error = str(exc)
        except Exception as exc:
            error = str(exc) or type(exc).__name__
            if not _permanent(exc) and d.attempts < MAX_ATTEMPTS:
                retry_at = self._clock.now() + timedelta(seconds=backoff(d.attempts))
        target = self._targets.get(d.target)
        if error is not None and isinstance(target, Webhook):
            # Errors of the HTTP stack may quote the URL, which may hold a token.
            error = error.replace(target.url, f"<{target.name} URL>")
        if error is not None:
            log.warning(
                "notification %s (%s to %s) attempt %d failed: %s",
                d.id,
                d.event,
                d.target,
                d.attempts,
                error,
            )
        try:
            kept = await self._store.settle_delivery(
                d.id, node_id=self._node_id(), now=self._clock.now(), error=error, retry_at=retry_at
            )
        except CronhiveError as exc:
            # The claim lapses and another attempt follows: at least once, never lost.
            log.warning("recording notification %s failed: %s", d.id, exc)
            return
        if not kept:
            log.info("notification %s was taken over by another node", d.id)

    async def _send(self, d: Delivery) -> None:
        target = self._targets.get(d.target)
        if target is None:
            raise RuntimeError(f"target {d.target!r} is not configured on this node")
        if isinstance(target, Chain):
            await self._chain(d, target)
            return
        payload = await self._enriched(d)
        # The transports (httpx, aiosmtplib) load with the first delivery: a node with
        # no targets never pays their memory.
        if isinstance(target, Webhook):
            import httpx

            from cronhive.notify import _webhook as webhook

            if self._client is None:
                self._client = httpx.AsyncClient(follow_redirects=False)
            await webhook.post(self._client, target, str(d.id), payload)
        elif isinstance(target, Mail):
            from cronhive.notify import _mail as mail

            await mail.send(target, payload)

    async def _enriched(self, d: Delivery) -> dict[str, Any]:
        """The stored payload plus what is cheaper to look up at send time: the node's
        name, the output's last lines, links to the web UI."""
        payload: dict[str, Any] = {**d.payload, "delivery": str(d.id), "target": d.target}
        run: dict[str, Any] = dict(payload.get("run", {}))
        if run.get("node_id"):
            names = {str(n.id): n.name for n in await self._store.list_nodes(now=self._clock.now())}
            run["node"] = names.get(run["node_id"])
        payload["run"] = run
        if d.execution_id is not None:
            tail = (await self._tail(d.execution_id))[-TAIL_BYTES:]
            payload["output_tail"] = tail.decode("utf-8", "replace")
        if self._base_url:
            links = {"run": f"{self._base_url}/runs/{d.execution_id}"}
            if d.job_id is not None:
                links["job"] = f"{self._base_url}/jobs/{d.job_id}"
            payload["links"] = links
        return payload

    async def _tail(self, execution_id: UUID) -> bytes:
        """The run's last output, both streams in order: from the database's chunks, or
        from the archive once they were moved there (reading only its last blocks)."""
        chunks = await self._store.output_tail(execution_id)
        if chunks or self._blobs is None:
            return b"".join(c.data for c in chunks)
        run = await self._store.get_execution(execution_id, visible_to=None)
        start = {
            Stream.STDOUT: max(0, run.stdout_bytes - TAIL_BYTES),
            Stream.STDERR: max(0, run.stderr_bytes - TAIL_BYTES),
        }
        found = [
            c
            async for c in follow_output(
                self._store,
                self._hub,
                execution_id,
                visible_to=None,
                streams=(Stream.STDOUT, Stream.STDERR),
                closing=asyncio.Event(),
                poll=1.0,
                blobs=self._blobs,
                start=start,
            )
        ]
        return b"".join(c.data for c in found)

    async def _chain(self, d: Delivery, target: Chain) -> None:
        run: Mapping[str, Any] = d.payload.get("run", {})
        depth = int(run.get("chain_depth") or 0) + 1
        if depth > MAX_CHAIN_DEPTH:
            raise Refused(f"chain depth limit {MAX_CHAIN_DEPTH} reached; {target.job} not run")
        try:
            job = await self._store.find_job(target.job, owner=target.owner, visible_to=None)
        except NotFound:
            raise Refused(f"chained job {target.owner}/{target.job} does not exist") from None
        now = self._clock.now()
        base = new.triggered(job, now)
        env = {
            **base.run.env,
            "CRONHIVE_TRIGGER_RUN": str(run.get("id") or ""),
            "CRONHIVE_TRIGGER_JOB": f"{d.owner}/{d.job_name or ''}",
            "CRONHIVE_TRIGGER_STATE": str(run.get("state") or ""),
            "CRONHIVE_TRIGGER_EVENT": str(d.event),
            DEPTH_ENV: str(depth),
        }
        execution: Execution = replace(base, id=chain_run_id(d.id), run=replace(base.run, env=env))
        try:
            await self._store.enqueue(execution)
        except Conflict:
            # An earlier attempt queued it (its node died before recording): done already.
            await self._store.get_execution(execution.id, visible_to=None)
            return
        await self._store.add_event(
            Event(
                id=0,
                at=now,
                kind="run.queued",
                owner=job.owner,
                job_id=job.id,
                execution_id=execution.id,
                message=f"{job.name} chained after {d.job_name} {run.get('state')} ({d.event})",
            )
        )


class DelivererService:
    """The deliverer as a `NodeConfig.extra` entry (started with the node's services)."""

    __name__ = "deliverer"

    def __init__(self, targets: Targets, *, base_url: str | None = None) -> None:
        self.targets = targets
        self.base_url = base_url

    async def __call__(self, ctx: NodeContext) -> None:
        process = ctx.process
        deliverer = Deliverer(
            ctx.store,
            ctx.clock,
            ctx.hub,
            lambda: process.node.id,
            self.targets,
            base_url=self.base_url,
            blobs=ctx.config.blobs,
        )
        await deliverer.run()
