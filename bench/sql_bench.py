"""SQL job runs: what one costs on the node (connect as the login role, the role rule,
the slot's fencing lock, SET ROLE, the statement, close), and CSV output in MB/s.

Needs PostgreSQL at 127.0.0.1:5432 (user postgres, trust; override with
CRONHIVE_BENCH_PG). Creates roles `wtsql_bench_*` and a database, drops them after.

    .venv/bin/python bench/sql_bench.py [--runs 200] [--rows 200000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid

import psycopg

from cronhive import runner
from cronhive.auth.policy import parse_policy
from cronhive.model import SqlSpec
from cronhive.sqljobs import SqlJobs, SqlTarget

PG_ADMIN = os.environ.get("CRONHIVE_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


class Counting:
    """An OutputSink that only counts bytes (the shipper's cost is not measured here)."""

    def __init__(self) -> None:
        self.bytes = 0

    async def write(self, chunk: runner.Chunk) -> None:
        self.bytes += len(chunk.data)

    async def close(self) -> None:
        pass


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def bench(sql: SqlJobs, role: str, runs: int, rows: int) -> None:
    spec = SqlSpec(statement="SELECT 1", database="wh", role=role)
    took: list[float] = []
    for i in range(runs):
        start = time.perf_counter()
        run = sql.start(
            run_id=f"b{i}", owner="user:bench", spec=spec, timeout=60.0,
            sink=Counting(), output_cap=None, slot=f"bench@{i}",
        )  # fmt: skip
        result = await run.wait()
        assert result.exit_code == 0, result
        took.append((time.perf_counter() - start) * 1000)
    print(
        f"SELECT 1 as a role, {runs} runs one after another: "
        f"p50 {pct(took, 0.5):.1f} ms, p95 {pct(took, 0.95):.1f} ms, "
        f"{runs / (sum(took) / 1000):.0f} runs/s"
    )
    sink = Counting()
    text = f"SELECT g, md5(g::text) AS h, NULL AS n FROM generate_series(1, {rows}) g"
    spec = SqlSpec(statement=text, database="wh", role=role)
    start = time.perf_counter()
    run = sql.start(
        run_id="csv", owner="user:bench", spec=spec, timeout=600.0,
        sink=sink, output_cap=None, slot="bench@csv",
    )  # fmt: skip
    assert (await run.wait()).exit_code == 0
    seconds = time.perf_counter() - start
    print(
        f"{rows} rows as CSV: {sink.bytes / 1e6:.1f} MB in {seconds:.2f} s, "
        f"{sink.bytes / 1e6 / seconds:.1f} MB/s (query included)"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--rows", type=int, default=200_000)
    args = ap.parse_args()
    tag = uuid.uuid4().hex[:8]
    login, role, db = f"wtsql_bench_login_{tag}", f"wtsql_bench_etl_{tag}", f"wtsql_bench_{tag}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {login} LOGIN".encode())
        conn.execute(f"CREATE ROLE {role} NOLOGIN".encode())
        conn.execute(f"GRANT {role} TO {login}".encode())
        conn.execute(f'CREATE DATABASE "{db}"'.encode())
    try:
        url = PG_ADMIN.rsplit("/", 1)[0].replace("postgres@", f"{login}@") + f"/{db}"
        policy = parse_policy(f'[users.bench.sql]\nwh = ["{role}"]\n')
        sql = SqlJobs({"wh": SqlTarget(name="wh", url=url)}, policy)
        print(f"load average {os.getloadavg()[0]:.1f}")
        asyncio.run(bench(sql, role, args.runs, args.rows))
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'.encode())
            conn.execute(f"DROP ROLE IF EXISTS {role}".encode())
            conn.execute(f"DROP ROLE IF EXISTS {login}".encode())


if __name__ == "__main__":
    main()
