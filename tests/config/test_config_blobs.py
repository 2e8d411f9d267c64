"""Blob store and retention settings: defaults, the file, and bad values refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from cronhive.config import load_server_config
from cronhive.errors import InvalidInput
from cronhive.node import blob_store, retention_policy


def test_the_default_is_a_local_directory_in_the_data_dir(tmp_path: Path) -> None:
    c = load_server_config(None, data_dir=tmp_path)
    assert (c.blobs, c.blob_dir, c.script_cache_dir) == (
        "local",
        tmp_path / "blobs",
        tmp_path / "scripts",
    )
    store = blob_store(c)
    assert (store.kind, store.shared) == ("local", False)
    policy = retention_policy(c)
    assert (policy.run_days, policy.runs_per_job, policy.event_days) == (30.0, 1000, 30.0)


def test_s3_from_the_file(tmp_path: Path) -> None:
    f = tmp_path / "node.toml"
    f.write_text(
        'data_dir = "/var/lib/cronhive"\nblobs = "s3"\ns3_bucket = "b"\n'
        's3_endpoint = "http://127.0.0.1:9000"\ns3_prefix = "prod"\n'
        's3_access_key_id = "k"\ns3_secret_access_key = "s"\nretain_days = 7\n'
    )
    c = load_server_config(f)
    store = blob_store(c)
    assert (store.kind, store.shared) == ("s3", True)
    assert store.describe() == "S3 bucket b at http://127.0.0.1:9000 under prod"
    assert "s" not in store.describe().split()  # never the secret
    assert retention_policy(c).run_days == 7.0


@pytest.mark.parametrize(
    ("flags", "field"),
    [
        ({"blobs": "ftp"}, "blobs"),
        ({"blobs": "s3"}, "s3_bucket"),
        ({"s3_bucket": 3}, "s3_bucket"),
        ({"retain_days": -1}, "retain_days"),
        ({"retain_runs_per_job": 1.5}, "retain_runs_per_job"),
        ({"script_max_bytes": -1}, "script_max_bytes"),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, flags: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        load_server_config(None, data_dir=tmp_path, **flags)
    assert caught.value.field == field
