"""Three nodes' claim loops racing over one PostgreSQL queue: how fast they drain it.

    .venv/bin/python bench/claim_race_bench.py [--queued 3000] [--batch 2]
        [--pg postgresql://postgres@127.0.0.1:5432/postgres]

Three `Store`s (as three nodes) claim `--batch` runs at a time, concurrently, until the
`--queued` runs of one owner are all taken; prints the runs per second and how many
claims came back empty (rows another claimer had just taken). Run it with the sources of
another commit first on PYTHONPATH to compare (it only needs `Store.claim`).
A scratch database is created on the server and dropped after.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from urllib.parse import urlsplit, urlunsplit

import psycopg

from cronhive.engine import executions as new
from cronhive.model import RunSpec
from cronhive.store import Store, open_store


async def _race(url: str, queued: int, batch: int) -> tuple[float, int, int]:
    stores = [await open_store(url) for _ in range(3)]
    try:
        now = await stores[0].database_time()
        for _ in range(queued):
            await stores[0].enqueue(new.adhoc("user:bench", RunSpec(command=("true",)), now))
        nodes = [
            await s.register_node(name=f"n{i}", tags=frozenset(), capacity=32, ttl=600, now=now)
            for i, s in enumerate(stores)
        ]
        taken, claims, empty = 0, 0, 0

        async def loop(store: Store, node_id: uuid.UUID) -> None:
            nonlocal taken, claims, empty
            while taken < queued:
                got = await store.claim(node_id, frozenset(), batch, await store.database_time())
                taken, claims, empty = taken + len(got), claims + 1, empty + (not got)

        t = time.monotonic()
        await asyncio.gather(*(loop(s, n.id) for s, n in zip(stores, nodes, strict=True)))
        return queued / (time.monotonic() - t), claims, empty
    finally:
        for s in stores:
            await s.close()


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--queued", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = ap.parse_args()
    name = f"cronhive_race_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.pg, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        url = urlunsplit(urlsplit(args.pg)._replace(path="/" + name))
        rate, claims, empty = await _race(url, args.queued, args.batch)
    finally:
        with psycopg.connect(args.pg, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    print(
        f"3 claimers, claim({args.batch}), {args.queued} queued: {rate:.0f} runs/s, "
        f"{claims} claims, {empty} empty"
    )


if __name__ == "__main__":
    asyncio.run(main())
