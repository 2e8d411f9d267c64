"""Certificate files: contents, modes, idempotent dev set-up, clear errors on bad files."""

from __future__ import annotations

import ipaddress
import os
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from cronhive.auth.certs import (
    CertPaths,
    ensure_dev_certs,
    init_certs,
    issue_client,
    issue_client_files,
    load_ca,
    load_pair,
)
from cronhive.auth.identity import subject_of
from cronhive.errors import Conflict, InvalidInput, PermissionDenied


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_init_writes_keys_0600_certs_0644_dir_0700(tmp_path: Path) -> None:
    paths = init_certs(tmp_path / "certs")
    assert _mode(paths.dir) == 0o700
    for name in ("server", "admin"):
        assert _mode(paths.dir / f"{name}.key") == 0o600
        assert _mode(paths.dir / f"{name}.crt") == 0o644
    assert _mode(paths.ca_cert) == 0o644


def test_init_keeps_the_ca_key_in_its_own_directory(tmp_path: Path) -> None:
    paths = init_certs(tmp_path / "node" / "certs")
    assert not (paths.dir / "ca.key").exists()
    assert paths.ca_home == tmp_path / "node-ca"  # X/certs -> X-ca: outside the node's dir
    assert _mode(paths.ca_home) == 0o700
    assert _mode(paths.ca_key) == 0o600
    assert (paths.ca_home / "ca.crt").read_bytes() == paths.ca_cert.read_bytes()
    own = init_certs(tmp_path / "d", ca_dir=tmp_path / "vault")
    assert own.ca_key == tmp_path / "vault" / "ca.key" and own.ca_key.exists()
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == [
        "admin.crt",
        "admin.key",
        "ca.crt",
        "server.crt",
        "server.key",
    ]
    issue_client_files(tmp_path / "d", ca_dir=tmp_path / "vault", user="bob")
    with pytest.raises(InvalidInput, match=r"d-ca/ca\.crt: no such file"):
        issue_client_files(tmp_path / "d", user="carol")  # not where the CA is


def test_key_mode_is_exact_under_a_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        paths = init_certs(tmp_path / "certs")
    finally:
        os.umask(old)
    assert _mode(paths.ca_key) == 0o600
    assert _mode(paths.ca_home) == 0o700


def test_server_certificate_names_and_usage(tmp_path: Path) -> None:
    paths = init_certs(tmp_path, dns_names=["cron.example", "localhost"], ip_addresses=["::1"])
    cert = load_pair(paths.server_cert, paths.server_key).cert
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["cron.example", "localhost"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("::1")]
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    cert.verify_directly_issued_by(load_ca(paths).cert)


def test_client_certificate_subject_is_cn_plus_one_ou_per_group(tmp_path: Path) -> None:
    paths = init_certs(tmp_path)
    cert_path, key_path = issue_client_files(
        tmp_path, user="alice", groups=["ops", "data", "ops"], days=7
    )
    cert = load_pair(cert_path, key_path).cert
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "alice"
    ous = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)]
    assert ous == ["data", "ops"]
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc).days == 7
    # The DER form an API gets from getpeercert(binary_form=True) reads the same.
    assert subject_of(cert.public_bytes(Encoding.DER)) == ("alice", frozenset({"data", "ops"}))
    assert _mode(paths.client_key("alice")) == 0o600


def test_init_refuses_to_replace_a_ca_without_force(tmp_path: Path) -> None:
    first = init_certs(tmp_path).ca_cert.read_bytes()
    with pytest.raises(Conflict, match="CA already exists"):
        init_certs(tmp_path)
    assert tmp_path.joinpath("ca.crt").read_bytes() == first
    init_certs(tmp_path, force=True)
    assert tmp_path.joinpath("ca.crt").read_bytes() != first
    assert _mode(CertPaths(dir=tmp_path).ca_key) == 0o600


def test_issue_refuses_to_replace_a_client_without_force(tmp_path: Path) -> None:
    init_certs(tmp_path)
    issue_client_files(tmp_path, user="bob")
    with pytest.raises(Conflict, match=r"bob\.crt already exists"):
        issue_client_files(tmp_path, user="bob")
    issue_client_files(tmp_path, user="bob", force=True)


def test_ensure_dev_certs_is_idempotent_and_completes_missing_files(tmp_path: Path) -> None:
    paths = ensure_dev_certs(tmp_path)
    assert paths == CertPaths(dir=tmp_path / "certs")
    before = {p.name: p.read_bytes() for p in paths.dir.iterdir()}
    assert set(before) == {f"{n}.{e}" for n in ("server", "admin") for e in ("crt", "key")} | {
        "ca.crt"
    }
    # The dev CA key lives beside the data dir, never in it (no run reaches it through it).
    assert paths.ca_key == tmp_path.with_name(f"{tmp_path.name}-ca") / "ca.key"
    assert _mode(paths.ca_key) == 0o600 and _mode(paths.ca_home) == 0o700
    assert ensure_dev_certs(tmp_path) == paths
    assert {p.name: p.read_bytes() for p in paths.dir.iterdir()} == before
    paths.client_cert().unlink()
    paths.client_key().unlink()
    ensure_dev_certs(tmp_path)
    assert paths.client_cert().read_bytes() != before["admin.crt"]
    assert paths.ca_cert.read_bytes() == before["ca.crt"]


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda p: p.server_key.write_text("garbage"), r"server\.key: not an unencrypted PEM"),
        (lambda p: p.ca_cert.write_text("garbage"), r"ca\.crt: not a PEM certificate"),
        (lambda p: p.server_cert.unlink(), r"server\.crt: no such file"),
        (
            lambda p: p.server_key.write_bytes(p.client_key().read_bytes()),
            r"server\.key: key does not match the certificate",
        ),
        (lambda p: p.ca_cert.chmod(0), r"ca\.crt: cannot read"),
    ],
)
def test_ensure_dev_certs_names_the_bad_file(tmp_path: Path, damage: object, message: str) -> None:
    if "cannot read" in message and os.geteuid() == 0:
        pytest.skip("root reads files whatever their mode")
    paths = ensure_dev_certs(tmp_path)
    damage(paths)  # type: ignore[operator]
    with pytest.raises(InvalidInput, match=message) as info:
        ensure_dev_certs(tmp_path)
    assert info.value.field is not None and info.value.field.startswith(str(paths.dir))


def test_ensure_dev_certs_moves_an_old_ca_key_out_of_the_data_dir(tmp_path: Path) -> None:
    paths = ensure_dev_certs(tmp_path)
    key = paths.ca_key.read_bytes()
    paths.legacy_ca_key.write_bytes(key)  # the layout of older versions
    paths.legacy_ca_key.chmod(0o600)
    paths.ca_key.unlink()
    ensure_dev_certs(tmp_path)
    assert not paths.legacy_ca_key.exists()
    assert paths.ca_key.read_bytes() == key and _mode(paths.ca_key) == 0o600


def test_ensure_dev_certs_rejects_a_server_cert_from_another_ca(tmp_path: Path) -> None:
    paths = ensure_dev_certs(tmp_path)
    other = init_certs(tmp_path / "other")
    for name in ("server.crt", "server.key"):
        paths.dir.joinpath(name).write_bytes(other.dir.joinpath(name).read_bytes())
    with pytest.raises(InvalidInput, match=r"server\.crt: not issued by this CA"):
        ensure_dev_certs(tmp_path)


@pytest.mark.parametrize(
    "name", ["", "a/b", ".hidden", "x" * 65, "sp ace", "semi;colon", "-dash", "ünï"]
)
def test_bad_user_names_are_refused(tmp_path: Path, name: str) -> None:
    init_certs(tmp_path)
    with pytest.raises(InvalidInput):
        issue_client_files(tmp_path, user=name)
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".crt") == [
        "admin.crt",
        "ca.crt",
        "server.crt",
    ]


def test_bad_server_input_and_days_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="bad IP address"):
        init_certs(tmp_path, ip_addresses=["300.1.1.1"])
    with pytest.raises(InvalidInput, match="days"):
        init_certs(tmp_path, days=0)
    assert not tmp_path.joinpath("ca.crt").exists()


@pytest.mark.parametrize(
    ("subject", "outcome"),
    [
        (((("commonName", "alice"),),), ("alice", frozenset())),
        (
            ((("organizationalUnitName", "ops"),), (("commonName", "alice"),)),
            ("alice", frozenset({"ops"})),
        ),
        ((), "exactly one CN, has 0"),
        (((("commonName", "a"),), (("commonName", "b"),)), "exactly one CN, has 2"),
        (((("commonName", "a b"),),), "certificate CN"),
        (((("commonName", "a"),), (("organizationalUnitName", "x/y"),)), "certificate OU"),
    ],
)
def test_subject_of_peercert_dict(subject: object, outcome: object) -> None:
    cert = {"subject": subject}
    if isinstance(outcome, str):
        with pytest.raises(PermissionDenied, match=outcome):
            subject_of(cert)
    else:
        assert subject_of(cert) == outcome


def test_no_certificate_is_refused() -> None:
    with pytest.raises(PermissionDenied, match="no client certificate"):
        subject_of(None)
    with pytest.raises(PermissionDenied, match="cannot be parsed"):
        subject_of(b"not der")


def test_issue_client_refuses_bad_group(tmp_path: Path) -> None:
    ca = load_ca(init_certs(tmp_path))
    with pytest.raises(InvalidInput, match="group"):
        issue_client(ca, user="alice", groups=["bad group"])
