"""Output served by a node that did not run the process: 20 readers live, 20 after the end.

Two nodes share one PostgreSQL database. Node A runs the command; node B claims nothing
and serves the API. Every reader attaches to B and must receive, from byte 0,
exactly the bytes the process wrote.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from apikit import running_cluster, wait_terminal

from cronhive.api._generated.cronhive.v1 import cronhive_pb2 as pb
from cronhive.api.client import Client

LINES = 300
# Output trickles for ~1.5 s so live readers attach mid-run; stderr interleaves.
SCRIPT = (
    f'i=1; while [ $i -le {LINES} ]; do echo "line $i of the run"; '
    'if [ $((i % 50)) -eq 0 ]; then echo "err $i" >&2; fi; '
    "i=$((i+1)); sleep 0.005; done"
)
EXPECTED_OUT = "".join(f"line {i} of the run\n" for i in range(1, LINES + 1)).encode()
EXPECTED_ERR = "".join(f"err {i}\n" for i in range(50, LINES + 1, 50)).encode()


async def read_all(client: Client, run_id: str) -> tuple[bytes, bytes]:
    out, err = bytearray(), bytearray()
    chunks = await client.runs.StreamOutput(pb.StreamOutputRequest(id=run_id, follow=True))
    for c in chunks:
        target = out if c.stream == "stdout" else err
        assert c.offset == len(target), "chunks must arrive in order without gaps"
        target += c.data
    return bytes(out), bytes(err)


async def test_twenty_readers_on_another_node_get_every_byte_live_and_after(
    tmp_path: Path, pg_database: Callable[[str | None], str]
) -> None:
    url = pg_database(None)
    async with (
        running_cluster(tmp_path / "a", db_url=url, work=True) as a,
        running_cluster(tmp_path / "b", db_url=url, work=False) as b,
    ):
        started = await b["alice"].runs.Start(pb.StartRunRequest(command=["sh", "-c", SCRIPT]))

        async def running() -> None:
            while (
                await b["alice"].runs.GetStatus(pb.GetStatusRequest(id=started.id))
            ).state == "queued":
                await asyncio.sleep(0.02)

        await asyncio.wait_for(running(), 20)
        live = await asyncio.wait_for(
            asyncio.gather(*(read_all(b["alice"], started.id) for _ in range(20))), 60
        )
        done = await wait_terminal(b["alice"], started.id)
        after = await asyncio.wait_for(
            asyncio.gather(*(read_all(b["admin"], started.id) for _ in range(20))), 60
        )

        assert done.state == "succeeded"
        assert done.node_id == str(a.node.node.id) != str(b.node.node.id)
        for out, err in [*live, *after]:
            assert out == EXPECTED_OUT
            assert err == EXPECTED_ERR
