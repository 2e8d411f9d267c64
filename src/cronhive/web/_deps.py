"""What every web handler shares: the node's application layer (cronhive.service) and
the server's closing state, plus the web's one rule for ids: a malformed id, a missing
object and one the caller may not see all answer the same 404 (nothing to probe)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from uuid import UUID

from cronhive.auth import Identity
from cronhive.errors import NotFound
from cronhive.model import Execution, Job
from cronhive.service import Service

__all__ = ["Web", "hidden", "uuid_or_404"]


def uuid_or_404(text: str, what: str) -> UUID:
    try:
        return UUID(text)
    except ValueError:
        raise NotFound(f"no such {what}") from None


@contextmanager
def hidden(what: str) -> Iterator[None]:
    """NotFound says only "no such `what`" (not which id was asked for)."""
    try:
        yield
    except NotFound:
        raise NotFound(f"no such {what}") from None


@dataclass(kw_only=True, eq=False)
class Web:
    """The web front end's dependencies (one per node)."""

    service: Service
    # Set when the server closes: live tails end instead of holding the shutdown up.
    closing: asyncio.Event = field(default_factory=asyncio.Event)

    async def job(self, who: Identity, job_id: str) -> Job:
        with hidden("job"):
            return await self.service.get_job(who, uuid_or_404(job_id, "job"))

    async def run(self, who: Identity, run_id: str) -> Execution:
        with hidden("run"):
            return await self.service.run_status(who, uuid_or_404(run_id, "run"))
