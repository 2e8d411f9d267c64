"""What every servicer shares: the node's application layer (cronhive.service), the
server's closing state, and the step each RPC begins with (know the caller, read the
request)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from grpclib.const import Status
from grpclib.exceptions import GRPCError
from grpclib.server import Stream

from cronhive.auth import Identity, identity_of
from cronhive.errors import InvalidInput
from cronhive.service import Service

T = TypeVar("T")


@dataclass(frozen=True, kw_only=True)
class Api:
    """The servicers' dependencies (one per node): the operations, and the server's
    closing (set when it closes: streams end with UNAVAILABLE instead of hanging)."""

    service: Service
    closing: asyncio.Event = field(default_factory=asyncio.Event)
    streams: set[asyncio.Task[Any]] = field(default_factory=set)

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

    def check_open(self) -> None:
        """After a stream ended by the server closing: UNAVAILABLE, so the client knows
        to call again (elsewhere if need be)."""
        if self.closing.is_set():
            raise GRPCError(Status.UNAVAILABLE, "the server is shutting down; call again")


class Servicer:
    def __init__(self, api: Api) -> None:
        self.api = api
        self.svc = api.service

    async def request(self, stream: Stream[T, Any]) -> tuple[T, Identity]:
        """The request and the caller. Authentication first: an unusable certificate is
        refused before the request is even read."""
        identity = identity_of(stream, self.svc.policy)
        message = await stream.recv_message()
        if message is None:
            raise InvalidInput("request: no message", field="request")
        return message, identity
