"""Certificates: a private CA, server certificates and client (user) certificates.

Everything is EC P-256 with SHA-256 (accepted by every TLS 1.3 stack, OpenSSL included).
A client certificate names its user in the subject CN and carries one OU per group; the CA
signing it is what makes those claims trustworthy, so whoever holds ``ca.key`` can mint any
identity: keep it off the nodes that do not issue certificates.

A certificate directory holds what nodes and clients need; the CA's key lives in a
directory of its own, never beside them (a node's data dir must never hold it)::

    <dir>/ca.crt  server.crt  server.key  <name>.crt  <name>.key
    <ca dir>/ca.crt  ca.key          default: X/certs -> X-ca, D -> D-ca (see default_ca_dir)

Private keys are created 0600 with ``O_CREAT | O_EXCL`` (no moment where another user could
open them), certificates 0644, the directories 0700.
"""

from __future__ import annotations

import datetime as dt
import errno
import ipaddress
import os
import re
import secrets
import socket
from collections.abc import Iterable, Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from cronhive.auth._paths import ADMIN_USER, CertPaths, default_ca_dir, validate_name
from cronhive.auth._pem import (
    KeyPair,
    cert_pem,
    check_signed_by,
    load_cert,
    load_pair,
    make_dir,
    read_file,
    write_file,
    write_pair,
)
from cronhive.errors import Conflict, InvalidInput

__all__ = [
    "ADMIN_USER",
    "CertPaths",
    "KeyPair",
    "create_ca",
    "default_ca_dir",
    "ensure_dev_certs",
    "init_certs",
    "issue_client",
    "issue_client_files",
    "issue_server",
    "issue_server_files",
    "load_ca",
    "load_cert",
    "load_pair",
    "validate_name",
    "write_pair",
]

MAX_DAYS = 100 * 365


def _validate_days(days: int) -> int:
    if not 1 <= days <= MAX_DAYS:
        raise InvalidInput(f"days must be between 1 and {MAX_DAYS}, got {days}", field="days")
    return days


def _now(now: dt.datetime | None) -> dt.datetime:
    return now if now is not None else dt.datetime.now(dt.UTC)


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    *,
    days: int,
    now: dt.datetime | None,
) -> x509.CertificateBuilder:
    start = _now(now) - dt.timedelta(minutes=5)  # tolerate small clock skew between nodes
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=_validate_days(days)))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def _key_usage(*, signs_certs: bool) -> x509.KeyUsage:
    off = dict.fromkeys(
        ["content_commitment", "key_encipherment", "data_encipherment", "key_agreement"], False
    )
    return x509.KeyUsage(
        digital_signature=True,
        key_cert_sign=signs_certs,
        crl_sign=signs_certs,
        encipher_only=False,
        decipher_only=False,
        **off,
    )


def create_ca(
    *, common_name: str | None = None, days: int = 3650, now: dt.datetime | None = None
) -> KeyPair:
    """Creates a self-signed CA that may sign end-entity certificates only (path length 0).

    The default name carries a random suffix so two clusters' CAs are never confused."""
    key = ec.generate_private_key(ec.SECP256R1())
    cn = common_name or f"cronhive CA {secrets.token_hex(4)}"
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    cert = (
        _builder(name, name, key.public_key(), days=days, now=now)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(signs_certs=True), critical=True)
        .sign(key, hashes.SHA256())
    )
    return KeyPair(cert=cert, key=key)


def _end_entity(
    ca: KeyPair,
    subject: x509.Name,
    *,
    usage: x509.ObjectIdentifier,
    san: x509.SubjectAlternativeName | None,
    days: int,
    now: dt.datetime | None,
) -> KeyPair:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        _builder(subject, ca.cert.subject, key.public_key(), days=days, now=now)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(signs_certs=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
            critical=False,
        )
    )
    if san is not None:
        builder = builder.add_extension(san, critical=False)
    return KeyPair(cert=builder.sign(ca.key, hashes.SHA256()), key=key)


def issue_server(
    ca: KeyPair,
    *,
    dns_names: Sequence[str],
    ip_addresses: Sequence[str] = (),
    days: int = 825,
    now: dt.datetime | None = None,
) -> KeyPair:
    """Issues a server certificate valid for the given DNS names and IP addresses (SAN).

    Raises InvalidInput for an unparsable IP address or when no name is given at all.
    """
    general: list[x509.GeneralName] = []
    for dns in dns_names:
        if not dns or len(dns) > 253 or any(c.isspace() for c in dns):
            raise InvalidInput(f"bad DNS name {dns!r}", field="name")
        general.append(x509.DNSName(dns))
    for ip in ip_addresses:
        try:
            general.append(x509.IPAddress(ipaddress.ip_address(ip)))
        except ValueError:
            raise InvalidInput(f"bad IP address {ip!r}", field="ip") from None
    if not general:
        raise InvalidInput("a server certificate needs at least one DNS name or IP", field="name")
    cn = dns_names[0] if dns_names else ip_addresses[0]
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn[:64])])
    return _end_entity(
        ca,
        subject,
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
        san=x509.SubjectAlternativeName(general),
        days=days,
        now=now,
    )


def issue_client(
    ca: KeyPair,
    *,
    user: str,
    groups: Iterable[str] = (),
    days: int = 365,
    now: dt.datetime | None = None,
) -> KeyPair:
    """Issues a client certificate: subject CN=`user`, one OU per group (sorted, deduplicated).

    Raises InvalidInput for a bad user or group name.
    """
    attrs = [
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, validate_name(g, field="group"))
        for g in sorted(set(groups))
    ]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, validate_name(user, field="user")))
    return _end_entity(
        ca,
        x509.Name(attrs),
        usage=ExtendedKeyUsageOID.CLIENT_AUTH,
        san=None,
        days=days,
        now=now,
    )


def default_server_names() -> tuple[list[str], list[str]]:
    """The DNS names and addresses a dev server certificate covers on this machine."""
    names = ["localhost"]
    host = socket.gethostname()
    if host and host not in names and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9.-]{0,252}", host):
        names.append(host)
    return names, ["127.0.0.1", "::1"]


def init_certs(
    directory: Path,
    *,
    ca_dir: Path | None = None,
    dns_names: Sequence[str] = (),
    ip_addresses: Sequence[str] = (),
    days: int = 825,
    force: bool = False,
) -> CertPaths:
    """Creates a CA in `ca_dir` and a server and an ``admin`` client certificate in `directory`.

    `directory` gets ``ca.crt`` too, never ``ca.key`` (default `ca_dir`: beside it, see
    ``default_ca_dir``). Without names, the server certificate covers localhost, this host
    name, 127.0.0.1 and ::1. Raises Conflict if a CA is already there and `force` is false;
    InvalidInput for a bad name, address or day count (before anything is written).
    """
    paths = CertPaths(dir=directory, ca_dir=ca_dir)
    if paths.ca_home.absolute() == directory.absolute():
        raise InvalidInput("the CA directory must not be the certificate directory", field="ca_dir")
    existing = (paths.ca_cert, paths.ca_key, paths.ca_home / "ca.crt", paths.legacy_ca_key)
    if not force and any(p.exists() for p in existing):
        raise Conflict(f"a CA already exists for {directory} (use --force to replace it)")
    if not dns_names and not ip_addresses:
        dns_names, ip_addresses = default_server_names()
    _validate_days(days)
    ca = create_ca(days=max(days, 3650))
    server = issue_server(ca, dns_names=dns_names, ip_addresses=ip_addresses, days=days)
    admin = issue_client(ca, user=ADMIN_USER, days=days)
    make_dir(paths.ca_home)
    os.chmod(paths.ca_home, 0o700)  # whatever was there: only its owner reads the CA
    make_dir(directory)
    write_pair(ca, paths.ca_home / "ca.crt", paths.ca_key, overwrite=force)
    write_file(paths.ca_cert, cert_pem(ca.cert), 0o644, overwrite=force)
    write_pair(server, paths.server_cert, paths.server_key, overwrite=force)
    write_pair(admin, paths.client_cert(), paths.client_key(), overwrite=force)
    if force and paths.legacy_ca_key.exists():
        paths.legacy_ca_key.unlink()  # the old layout's key: replaced, and out of `directory`
    return paths


def load_ca(paths: CertPaths) -> KeyPair:
    """Loads the CA of a certificate directory (its key from ``ca_home``, or from the old
    place in ``dir`` if it is still there); InvalidInput naming the bad file."""
    if not paths.ca_key.exists() and paths.legacy_ca_key.exists():
        ca = load_pair(paths.ca_cert, paths.legacy_ca_key)
    else:
        ca = load_pair(paths.ca_home / "ca.crt", paths.ca_key)
    try:
        basic = ca.cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        basic = None
    if basic is None or not basic.ca:
        raise InvalidInput(f"{paths.ca_cert}: not a CA certificate", field=str(paths.ca_cert))
    return ca


def issue_client_files(
    directory: Path,
    *,
    ca_dir: Path | None = None,
    user: str,
    groups: Iterable[str] = (),
    days: int = 365,
    force: bool = False,
) -> tuple[Path, Path]:
    """Issues a client certificate with the CA in `directory`, writes ``<user>.crt/.key``.

    Returns (cert path, key path). Raises InvalidInput for a bad name or a missing/bad CA,
    Conflict if the files exist and `force` is false.
    """
    paths = CertPaths(dir=directory, ca_dir=ca_dir)
    cert_path, key_path = paths.client_cert(user), paths.client_key(user)
    if user in ("ca", "server"):
        raise InvalidInput(f"user name {user!r} is reserved for the CA/server files", field="user")
    pair = issue_client(load_ca(paths), user=user, groups=groups, days=days)
    write_pair(pair, cert_path, key_path, overwrite=force)
    return cert_path, key_path


def issue_server_files(
    out: Path,
    *,
    directory: Path,
    ca_dir: Path | None = None,
    dns_names: Sequence[str],
    ip_addresses: Sequence[str] = (),
    days: int = 825,
    force: bool = False,
) -> CertPaths:
    """A node's own certificate folder `out` (ca.crt, server.crt, server.key), issued by
    the CA of `directory`: what one node needs, for a certificate per node. Raises
    InvalidInput for bad names or a missing CA, Conflict if files exist and not `force`."""
    source = CertPaths(dir=directory, ca_dir=ca_dir)
    pair = issue_server(load_ca(source), dns_names=dns_names, ip_addresses=ip_addresses, days=days)
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    target = CertPaths(dir=out)
    write_pair(pair, target.server_cert, target.server_key, overwrite=force)
    target.ca_cert.write_bytes(source.ca_cert.read_bytes())
    return target


def ensure_dev_certs(data_dir: Path) -> CertPaths:
    """Returns ``<data_dir>/certs``, creating a dev CA, server and admin certificate if absent.

    The CA's key goes to ``<data_dir>-ca`` (0700, beside the data dir, never in it, so no
    run can reach it through the data dir; a key left in ``certs/`` by an older version is
    moved there). Idempotent: files that exist are checked (readable, key matches, issued
    by the CA) and kept; only missing ones are created. Raises InvalidInput naming a bad
    existing file.
    """
    paths = CertPaths.of_dev(data_dir)
    if paths.legacy_ca_key.exists() and not paths.ca_key.exists():
        _move_out_ca(paths)
    if not paths.ca_cert.exists():
        if paths.server_cert.exists() or paths.client_cert().exists() or paths.ca_key.exists():
            # Certificates without their CA cannot be checked or completed: say so.
            raise InvalidInput(f"{paths.ca_cert}: no such file", field=str(paths.ca_cert))
        return init_certs(paths.dir)
    ca_cert = load_cert(paths.ca_cert)
    server = (paths.server_cert, paths.server_key)
    admin = (paths.client_cert(), paths.client_key())
    if not any(p.exists() for p in server):
        names, ips = default_server_names()
        write_pair(issue_server(load_ca(paths), dns_names=names, ip_addresses=ips), *server)
    if not any(p.exists() for p in admin):
        write_pair(issue_client(load_ca(paths), user=ADMIN_USER), *admin)
    for cert_path, key_path in (server, admin):
        check_signed_by(load_pair(cert_path, key_path).cert, cert_path, ca_cert)
    return paths


def _move_out_ca(paths: CertPaths) -> None:
    """Moves an old layout's ``certs/ca.key`` (and its certificate) into ``ca_home``."""
    make_dir(paths.ca_home)
    os.chmod(paths.ca_home, 0o700)
    if not (paths.ca_home / "ca.crt").exists():
        write_file(paths.ca_home / "ca.crt", read_file(paths.ca_cert), 0o644, overwrite=False)
    try:
        os.replace(paths.legacy_ca_key, paths.ca_key)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        write_file(paths.ca_key, read_file(paths.legacy_ca_key), 0o600, overwrite=False)
        paths.legacy_ca_key.unlink()
