"""`stat` of a default node's files: data dir 0700; database, WAL, keys and spool 0600;
the CA key nowhere in the data dir."""

from __future__ import annotations

import stat
from pathlib import Path

from securitykit import Node, wait_for_file


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_data_dir_database_wal_keys_and_spool_are_private(node: Node) -> None:
    run_id = node.ok("run", "--", "sh", "-c", "echo out; echo err >&2; sleep 30").strip()
    spool = node.data_dir / "spool"
    try:
        wait_for_file(spool / f"{run_id}.stdout")
        wait_for_file(spool / f"{run_id}.stderr")
        assert _mode(node.data_dir) == 0o700
        assert _mode(spool) == 0o700
        for name in ("cronhive.db", "cronhive.db-wal", "cronhive.db-shm", "cronhive.db.lock"):
            assert _mode(node.data_dir / name) == 0o600, name
        for name in ("server.key", "admin.key"):
            assert _mode(node.certs / name) == 0o600, name
        assert _mode(node.certs) == 0o700
        for stream in ("stdout", "stderr"):
            assert _mode(spool / f"{run_id}.{stream}") == 0o600
    finally:
        node.ok("stop", run_id)


def test_the_ca_key_lives_outside_the_data_dir(node: Node) -> None:
    assert not [p for p in node.data_dir.rglob("*") if p.name == "ca.key"]
    ca_dir = node.data_dir.with_name(f"{node.data_dir.name}-ca")
    assert _mode(ca_dir) == 0o700
    assert _mode(ca_dir / "ca.key") == 0o600


def test_an_existing_loose_data_dir_is_tightened(tmp_path: Path) -> None:
    from securitykit import running_node

    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    (data / "cronhive.db").touch(mode=0o644)
    with running_node(data) as n:
        assert _mode(n.data_dir) == 0o700
        assert _mode(n.data_dir / "cronhive.db") == 0o600
        assert _mode(n.data_dir / "cronhive.db-wal") == 0o600
