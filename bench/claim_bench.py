"""What a fair claim costs as the queue grows: `Store.claim(limit=16)` with N queued runs
of 10 owners, on PostgreSQL and SQLite.

    .venv/bin/python bench/claim_bench.py [--queued 500 5000] [--claims 40]
        [--pg postgresql://postgres@127.0.0.1:5432/postgres]

The claim ranks every eligible queued run by its owner's load (store/_fair.py), so its
cost grows with the queue; before fairness it read the oldest 16 off an index. Prints
the median over `--claims` claims (each takes 16 runs; the queue is refilled first).
A scratch database is created on the PostgreSQL server and dropped after.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

from cronhive.engine import executions as new
from cronhive.model import RunSpec
from cronhive.store import Store, open_store
from cronhive.store.base import RunCaps

OWNERS = 10
BATCH = 16


async def _fill(store: Store, count: int) -> None:
    now = await store.database_time()
    for i in range(count):
        await store.enqueue(new.adhoc(f"user:u{i % OWNERS}", RunSpec(command=("true",)), now))


async def _median_claim_ms(url: str, queued: int, claims: int) -> float:
    store = await open_store(url)
    try:
        now = await store.database_time()
        node = await store.register_node(
            name="bench", tags=frozenset(), capacity=BATCH, ttl=3600, now=now
        )
        await _fill(store, queued + claims * BATCH)
        caps = RunCaps(default=1_000_000)  # a cap on every owner, none reached
        times = []
        for _ in range(claims):
            t = time.perf_counter()
            got = await store.claim(
                node.id, frozenset(), BATCH, await store.database_time(), caps=caps
            )
            times.append((time.perf_counter() - t) * 1000)
            assert len(got) == BATCH
        return statistics.median(times)
    finally:
        await store.close()


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--queued", type=int, nargs="+", default=[500, 5000])
    ap.add_argument("--claims", type=int, default=40)
    ap.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = ap.parse_args()
    print(f"claim({BATCH}), {OWNERS} owners, median of {args.claims}:")
    for queued in args.queued:
        name = f"cronhive_claim_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(args.pg, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        try:
            pg = urlunsplit(urlsplit(args.pg)._replace(path="/" + name))
            pg_ms = await _median_claim_ms(pg, queued, args.claims)
        finally:
            with psycopg.connect(args.pg, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        with tempfile.TemporaryDirectory() as tmp:
            lite_ms = await _median_claim_ms(
                f"sqlite:///{Path(tmp) / 'bench.db'}", queued, args.claims
            )
        print(f"  {queued:6} queued: PostgreSQL {pg_ms:6.1f} ms, SQLite {lite_ms:6.1f} ms")


if __name__ == "__main__":
    asyncio.run(main())
