"""An idle node's memory (issue 17 target: <= 60 MB RSS), on SQLite and on PostgreSQL.

Each node is a real `cronhive server` (API and web listeners on, metrics off, no jobs) on
a database already migrated, as on every start but the first after an upgrade. RSS is
read 5 s after the node joined.

    .venv/bin/python bench/rss_bench.py
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import _ebkit as kit

TARGET_MB = 60.0


async def idle_rss(workdir: Path) -> list[tuple[str, tuple[float, float]]]:
    """(backend, (RSS now, peak) in MB) of an idle node on SQLite, then on PostgreSQL."""
    sqlite = f"sqlite:///{workdir / 'idle.db'}"
    rows = [("SQLite", await kit.node_rss(sqlite, workdir, "idle-lite", settle=5))]
    with kit.pg_database() as url:
        rows.append(("PostgreSQL", await kit.node_rss(url, workdir, "idle-pg", settle=5)))
    return rows


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        rows = await idle_rss(Path(tmp))
    print(f"| idle node | RSS now / peak | target <= {TARGET_MB:.0f} MB |")
    print("|---|---|---|")
    for name, (now, peak) in rows:
        print(f"| {name} | {now:.0f} / {peak:.0f} MB | {now / TARGET_MB:.2f}x the target |")


if __name__ == "__main__":
    asyncio.run(main())
