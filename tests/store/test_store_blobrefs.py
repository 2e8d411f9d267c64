"""Contract: who may read a script, archive records (and the chunks they replace), and
which ended runs still wait for archiving."""

from __future__ import annotations

import pytest
from storekit import ALICE, BOB, NOW, SEES_ALICE, SEES_BOB, at, execution, finish_one

from cronhive.errors import NotFound
from cronhive.model import Outcome, OutputChunk, RunState, Stream
from cronhive.store import Store

DIGEST = "ab" * 32


async def test_a_script_is_readable_by_the_owners_who_stored_it(store: Store) -> None:
    await store.add_script(DIGEST, owner=ALICE, name="a.py", size=10, now=NOW)
    await store.add_script(DIGEST, owner=ALICE, name="again.py", size=10, now=at(1))  # no-op
    found = await store.find_script(DIGEST, visible_to=SEES_ALICE)
    assert (found.owner, found.name, found.size) == (ALICE, "a.py", 10)
    assert (await store.find_script(DIGEST, visible_to=None)).digest == DIGEST  # admins
    with pytest.raises(NotFound):
        await store.find_script(DIGEST, visible_to=SEES_BOB)
    with pytest.raises(NotFound):
        await store.find_script("cd" * 32, visible_to=None)
    await store.add_script(DIGEST, owner=BOB, name="b.py", size=10, now=at(2))
    assert (await store.find_script(DIGEST, visible_to=SEES_BOB)).owner == BOB


async def test_archiving_replaces_the_chunks_once(store: Store) -> None:
    node = await store.register_node(name="n", tags=frozenset(), capacity=4, ttl=60, now=NOW)
    ran = await store.enqueue(execution())
    silent = await store.enqueue(execution())
    await store.claim(node.id, frozenset(), 2, NOW)
    chunks = [
        OutputChunk(execution_id=ran.id, stream=Stream.STDOUT, offset=0, seq=0, data=b"a"),
        OutputChunk(execution_id=ran.id, stream=Stream.STDERR, offset=0, seq=1, data=b"b"),
    ]
    await store.append_output(ran.id, node_id=node.id, chunks=chunks)
    cutoff = at(100)
    assert await store.unarchived_runs(finished_before=cutoff) == []  # still running
    for ex in (ran, silent):
        outcome = Outcome(state=RunState.SUCCEEDED, exit_code=0, finished_at=at(5))
        await finish_one(store, ex.id, node_id=node.id, outcome=outcome, retry=lambda _: None)
    assert list(await store.unarchived_runs(finished_before=cutoff)) == [ran.id]
    assert await store.unarchived_runs(finished_before=at(4)) == []  # ended later

    manifest = {"format": 1, "streams": {}, "chunks": [[0, 0, 0, 0, 1]]}
    assert await store.output_archive(ran.id) is None
    assert await store.archive_output(ran.id, manifest=manifest, now=at(6))
    assert await store.output_archive(ran.id) == manifest
    both = (Stream.STDOUT, Stream.STDERR)
    assert await store.read_output(ran.id, streams=both) == []
    assert await store.unarchived_runs(finished_before=cutoff) == []
    # A second archiver loses: nothing changes, its manifest is not taken.
    assert not await store.archive_output(ran.id, manifest={"other": True}, now=at(7))
    assert await store.output_archive(ran.id) == manifest
