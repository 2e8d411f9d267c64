"""A node checks its certificates in a child process (auth/_check.py): the same errors as
the in-process check, and a node process that never loads cryptography."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cronhive.auth._check import check_node_certs
from cronhive.auth.certs import CertPaths, ensure_dev_certs, init_certs
from cronhive.errors import Conflict, CronhiveError, InvalidInput


async def test_dev_certs_are_created_then_kept(tmp_path: Path) -> None:
    await check_node_certs(data_dir=tmp_path)
    paths = CertPaths(dir=tmp_path / "certs")
    before = {p.name: p.read_bytes() for p in paths.dir.iterdir()}
    assert {"ca.crt", "server.crt", "server.key", "admin.crt", "admin.key"} <= set(before)
    await check_node_certs(data_dir=tmp_path)
    assert {p.name: p.read_bytes() for p in paths.dir.iterdir()} == before
    assert ensure_dev_certs(tmp_path) == paths  # what the child made, the library accepts


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda p: p.server_key.write_text("garbage"), r"server\.key: not an unencrypted PEM"),
        (lambda p: p.ca_cert.unlink(), r"ca\.crt: no such file"),
        (
            lambda p: p.server_key.write_bytes(p.client_key().read_bytes()),
            r"server\.key: key does not match the certificate",
        ),
    ],
)
async def test_a_bad_file_is_named_as_in_process(
    tmp_path: Path, damage: object, message: str
) -> None:
    paths = ensure_dev_certs(tmp_path / "dev")
    damage(paths)  # type: ignore[operator]
    with pytest.raises(InvalidInput, match=message) as in_process:
        ensure_dev_certs(tmp_path / "dev")
    with pytest.raises(InvalidInput, match=message) as child:
        await check_node_certs(data_dir=tmp_path / "dev")
    assert (str(child.value), child.value.field) == (str(in_process.value), in_process.value.field)
    with pytest.raises(InvalidInput, match=message):
        await check_node_certs(certs=paths.dir)


async def test_given_certs_from_another_ca_are_refused_in_dev_mode(tmp_path: Path) -> None:
    paths = ensure_dev_certs(tmp_path)
    other = init_certs(tmp_path / "other")
    for name in ("server.crt", "server.key"):
        paths.dir.joinpath(name).write_bytes(other.dir.joinpath(name).read_bytes())
    with pytest.raises(InvalidInput, match=r"server\.crt: not issued by this CA"):
        await check_node_certs(data_dir=tmp_path)


async def test_an_unexpected_failure_is_reported_with_its_cause(tmp_path: Path) -> None:
    # A certificate directory that is a file: ensure_dev_certs cannot create it (OSError).
    (tmp_path / "certs").write_text("not a directory")
    with pytest.raises(
        CronhiveError, match=r"checking the certificates .* failed: \w*Error"
    ) as info:
        await check_node_certs(data_dir=tmp_path)
    assert not isinstance(info.value, InvalidInput | Conflict)


def test_a_node_process_loads_neither_cryptography_nor_psycopg(pki: CertPaths) -> None:
    """What an idle SQLite node imports (the CLI, the composition root, the TLS contexts
    of its listeners) holds neither: ~21 MB of its memory (docs/benchmarks.md)."""
    code = (
        "import sys; import cronhive.cli, cronhive.node; "
        "from cronhive.auth.tls import server_context; from cronhive.auth import CertPaths; "
        f"server_context(CertPaths(dir=__import__('pathlib').Path({str(pki.dir)!r}))); "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'cryptography', 'psycopg'}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"
