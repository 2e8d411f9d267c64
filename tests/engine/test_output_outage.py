"""Output through database failures: every byte stored once, the end recorded after the
bytes, and a live follower gets them all (issue: 0 chunks stored after a 0.3 s blip)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from enginekit import adhoc, running_node, terminal, wait_for

from cronhive.engine.output import follow_output
from cronhive.errors import StoreUnavailable
from cronhive.model import RunState, Stream
from cronhive.store import Store


class Outage:
    """The real store, with its output and finish writes failing while `down` is set."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.down = False
        self.refused = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def append_output(self, *args: Any, **kwargs: Any) -> None:
        self._refuse()
        await self._store.append_output(*args, **kwargs)

    async def finish_many(self, *args: Any, **kwargs: Any) -> Any:
        self._refuse()
        return await self._store.finish_many(*args, **kwargs)

    def _refuse(self) -> None:
        if self.down:
            self.refused += 1
            raise StoreUnavailable("database unavailable: injected outage")


LINES = 40


@pytest.mark.slow
@pytest.mark.parametrize(("outage", "start_after"), [(0.3, 0.2), (0.3, 0.95), (20.0, 0.5)])
async def test_output_survives_a_failing_store(
    store: Store, tmp_path: Path, outage: float, start_after: float
) -> None:
    """The run prints for ~1 s; the store fails for `outage` seconds starting
    `start_after` seconds in (0.95: across the run's end)."""
    flaky = Outage(store)
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
        await asyncio.sleep(start_after)
        flaky.down = True
        await asyncio.sleep(outage)
        if outage > 5:  # the run ended long ago, but its end waits for its bytes
            assert not await terminal(store, e.id)
        flaky.down = False
        await wait_for(lambda: terminal(store, e.id), within=30)
        await asyncio.wait_for(follower, 30)
    assert flaky.refused > 0
    done = await store.get_execution(e.id, visible_to=None)
    expected = b"".join(f"line {i}\n".encode() for i in range(1, LINES + 1))
    chunks = await store.read_output(e.id, streams=[Stream.STDOUT], limit=10_000)
    offsets = [c.offset for c in chunks]
    assert offsets == sorted(set(offsets))  # each byte once
    assert b"".join(c.data for c in chunks) == expected
    assert b"".join(got) == expected
    assert (done.state, done.stdout_bytes) == (RunState.SUCCEEDED, len(expected))
