"""Output through database failures: every byte stored once, the end recorded after the
bytes, and a live follower gets them all (issue: 0 chunks stored after a 0.3 s blip)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from enginekit import adhoc, running_node, terminal, wait_for

from cronhive.engine.output import follow_output
from cronhive.errors import StoreUnavailable
from cronhive.model import OutputChunk, RunState, Stream
from cronhive.store import Store


class Outage:
    """The real store, with its output and finish writes failing for `seconds` from the
    first write after `after_bytes` bytes of output were stored: the outage falls at the
    same point of the run however loaded the machine is."""

    def __init__(self, store: Store, *, after_bytes: int, seconds: float) -> None:
        self._store = store
        self._after_bytes = after_bytes
        self._seconds = seconds
        self._stored = 0
        self.began: float | None = None  # loop time the outage began
        self.started = asyncio.Event()
        self.refused = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def append_output(
        self, execution_id: Any, *, node_id: Any, chunks: Sequence[OutputChunk]
    ) -> None:
        self._refuse()
        await self._store.append_output(execution_id, node_id=node_id, chunks=chunks)
        self._stored += sum(len(c.data) for c in chunks)

    async def finish_many(self, *args: Any, **kwargs: Any) -> Any:
        self._refuse()
        return await self._store.finish_many(*args, **kwargs)

    def over(self) -> bool:
        now = asyncio.get_running_loop().time()
        return self.began is not None and now >= self.began + self._seconds

    def _refuse(self) -> None:
        if self.began is None and self._stored >= self._after_bytes:
            self.began = asyncio.get_running_loop().time()
            self.started.set()
        if self.began is not None and not self.over():
            self.refused += 1
            raise StoreUnavailable("database unavailable: injected outage")


LINES = 40


def line(i: int) -> bytes:
    return f"line {i}\n".encode()


@pytest.mark.slow
@pytest.mark.parametrize(("outage", "start_after"), [(0.3, 0.2), (0.3, 0.95), (20.0, 0.5)])
async def test_output_survives_a_failing_store(
    store: Store, tmp_path: Path, outage: float, start_after: float
) -> None:
    """The run prints for ~1 s; the store fails for `outage` seconds from the write after
    the first `start_after` of its output was stored (0.95: across the run's end)."""
    lines_before = round(start_after * LINES)
    flaky = Outage(
        store, after_bytes=sum(len(line(i)) for i in range(1, lines_before + 1)), seconds=outage
    )
    script = f"for i in $(seq 1 {LINES}); do echo line $i; sleep 0.025; done"
    async with running_node(flaky, tmp_path) as node:  # type: ignore[arg-type]
        e = await store.enqueue(adhoc(("sh", "-c", script), node.clock.now()))
        closing = asyncio.Event()
        got: list[bytes] = []

        async def follow() -> None:
            async for chunk in follow_output(
                store,
                node.hub,
                e.id,
                visible_to=None,
                streams=[Stream.STDOUT],
                follow=True,
                closing=closing,
                poll=0.2,
            ):
                got.append(chunk.data)

        follower = asyncio.create_task(follow())
        await asyncio.wait_for(flaky.started.wait(), 30)
        if outage > 5:  # the run ended long ago, but its end waits for its bytes
            await asyncio.sleep(outage - 2)
            assert not await terminal(store, e.id)
        await wait_for(lambda: terminal(store, e.id), within=30 + outage)
        await asyncio.wait_for(follower, 30)
    assert flaky.refused > 0
    done = await store.get_execution(e.id, visible_to=None)
    expected = b"".join(line(i) for i in range(1, LINES + 1))
    chunks = await store.read_output(e.id, streams=[Stream.STDOUT], limit=10_000)
    offsets = [c.offset for c in chunks]
    assert offsets == sorted(set(offsets))  # each byte once
    assert b"".join(c.data for c in chunks) == expected
    assert b"".join(got) == expected
    assert (done.state, done.stdout_bytes) == (RunState.SUCCEEDED, len(expected))
