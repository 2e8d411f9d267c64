"""What every servicer shares: the node's store, clock and hub, the policy, and the
two steps each RPC begins with (read the request, know the caller)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from grpclib.const import Status
from grpclib.exceptions import GRPCError
from grpclib.server import Stream

from cronhive.auth import Identity, Policy, identity_of, visible_owners
from cronhive.blobs import BlobStore
from cronhive.blobs.scripts import DEFAULT_MAX_BYTES as DEFAULT_SCRIPT_MAX
from cronhive.engine.clock import Clock
from cronhive.engine.hub import Hub
from cronhive.engine.output import wait_any
from cronhive.errors import InvalidInput
from cronhive.model import Event, RunSpec
from cronhive.notify import Targets
from cronhive.sqljobs import SqlJobs
from cronhive.store.base import Store, Visibility

T = TypeVar("T")

# Notifications are hints: a follower also re-checks at this pace.
POLL_SECONDS = 1.0


@dataclass(frozen=True, kw_only=True)
class Api:
    """The dependencies of the servicers (one per node)."""

    store: Store
    clock: Clock
    hub: Hub
    policy: Policy
    poll: float = POLL_SECONDS
    targets: Targets = field(default_factory=Targets)  # what jobs may name in `notify`
    sql: SqlJobs | None = None  # the node's SQL target databases (None: SQL refused)
    # Set when the server closes: streams end with UNAVAILABLE instead of hanging.
    closing: asyncio.Event = field(default_factory=asyncio.Event)
    streams: set[asyncio.Task[Any]] = field(default_factory=set)
    blobs: BlobStore | None = None  # script bodies and archived output (None: none here)
    script_max_bytes: int = DEFAULT_SCRIPT_MAX

    @contextmanager
    def streaming(self) -> Iterator[None]:
        """Marks the current call as a long-lived stream the server waits for at close."""
        task = asyncio.current_task()
        assert task is not None
        self.streams.add(task)
        try:
            yield
        finally:
            self.streams.discard(task)

    async def wait(self, events: list[asyncio.Event]) -> None:
        """A stream's pause: until one of `events`, the next poll, or close (which
        raises UNAVAILABLE so the client knows to reconnect, elsewhere if need be)."""
        await wait_any([*events, self.closing], self.poll)
        if self.closing.is_set():
            raise GRPCError(Status.UNAVAILABLE, "the server is shutting down; call again")


class Servicer:
    def __init__(self, api: Api) -> None:
        self.api = api

    async def request(self, stream: Stream[T, Any]) -> tuple[T, Identity, Visibility]:
        """The request, the caller and what the caller may see. Authentication first: an
        unusable certificate is refused before the request is even read."""
        identity = identity_of(stream, self.api.policy)
        message = await stream.recv_message()
        if message is None:
            raise InvalidInput("request: no message", field="request")
        return message, identity, visible_owners(identity)

    async def event(self, **fields: Any) -> None:
        """Records an event now (its id is the store's; the store wakes watchers)."""
        await self.api.store.add_event(Event(id=0, at=self.api.clock.now(), **fields))


async def check_sql(api: Api, owner: str, run: RunSpec) -> None:
    """A SQL run's role rule, when a job is saved or a run started (each run checks it
    again when it starts). PERMISSION_DENIED: the caller named the role, so saying no
    reveals nothing; INVALID_ARGUMENT for a database this node does not configure."""
    if run.sql is None:
        return
    if api.sql is None:
        raise InvalidInput("sql: this node runs no SQL jobs (no [databases])", field="sql")
    await api.sql.check(owner, run.sql)
