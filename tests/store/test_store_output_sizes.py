"""`Store.output_sizes`: the stored length of each stream of a run, on both backends (what
`status` shows while a run writes, or for a run lost with its node)."""

from __future__ import annotations

from storekit import NOW, execution

from cronhive.model import OutputChunk, Stream
from cronhive.store import Store


async def test_sizes_are_the_end_of_the_last_chunk_per_stream(store: Store) -> None:
    node = await store.register_node(name="n1", tags=frozenset(), capacity=4, ttl=30, now=NOW)
    await store.enqueue(execution())
    [run] = await store.claim(node.id, frozenset(), 1, NOW)
    assert await store.output_sizes(run.id) == {}

    def chunk(stream: Stream, offset: int, seq: int, data: bytes) -> OutputChunk:
        return OutputChunk(execution_id=run.id, stream=stream, offset=offset, seq=seq, data=data)

    await store.append_output(
        run.id,
        node_id=node.id,
        chunks=[
            chunk(Stream.STDOUT, 0, 0, b"hello "),
            chunk(Stream.STDERR, 0, 1, b"\x00\xff\xfe"),  # bytes, not characters
            chunk(Stream.STDOUT, 6, 2, "wörld\n".encode()),
        ],
    )
    assert await store.output_sizes(run.id) == {Stream.STDOUT: 13, Stream.STDERR: 3}
