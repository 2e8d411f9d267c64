"""PEM files of certificates and keys: written with exact modes, read with errors naming
the file. Used by ``cronhive.auth.certs``."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from cronhive.errors import Conflict, InvalidInput


@dataclass(frozen=True, kw_only=True)
class KeyPair:
    """A certificate and its private key."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey


def write_file(path: Path, data: bytes, mode: int, *, overwrite: bool) -> None:
    """Writes `data` to a new file created with `mode`; replaces atomically if allowed."""
    target = path
    if overwrite:
        path = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.fchmod(fd, mode)  # the umask may have narrowed it; we want exactly `mode`
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    if overwrite:
        os.replace(path, target)


def write_pair(pair: KeyPair, cert_path: Path, key_path: Path, *, overwrite: bool = False) -> None:
    """Writes the key (0600) and then the certificate (0644) as PEM.

    Raises Conflict if either file exists and `overwrite` is false.
    """
    if not overwrite:
        for p in (cert_path, key_path):
            if p.exists():
                raise Conflict(f"{p} already exists (use --force to replace it)")
    key_pem = pair.key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    try:
        write_file(key_path, key_pem, 0o600, overwrite=overwrite)
        write_file(
            cert_path,
            cert_pem(pair.cert),
            0o644,
            overwrite=overwrite,
        )
    except FileExistsError as exc:
        raise Conflict(f"{exc.filename} already exists (use --force to replace it)") from None


def read_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise InvalidInput(f"{path}: no such file", field=str(path)) from None
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot read ({exc.strerror})", field=str(path)) from None


def load_cert(path: Path) -> x509.Certificate:
    """Reads a PEM certificate; InvalidInput naming the file if missing or not a certificate."""
    data = read_file(path)  # outside the try: InvalidInput is a ValueError too
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError:
        raise InvalidInput(f"{path}: not a PEM certificate", field=str(path)) from None


def load_pair(cert_path: Path, key_path: Path) -> KeyPair:
    """Reads a certificate and its unencrypted EC private key and checks they belong together.

    Raises InvalidInput naming the file that is missing, unreadable, not PEM, not an EC
    key, or whose key does not match the certificate.
    """
    cert = load_cert(cert_path)
    data = read_file(key_path)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise InvalidInput(
            f"{key_path}: not an unencrypted PEM private key", field=str(key_path)
        ) from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise InvalidInput(f"{key_path}: not an EC private key", field=str(key_path))
    if key.public_key() != cert.public_key():
        raise InvalidInput(
            f"{key_path}: key does not match the certificate {cert_path}", field=str(key_path)
        )
    return KeyPair(cert=cert, key=key)


def check_signed_by(cert: x509.Certificate, path: Path, ca: x509.Certificate) -> None:
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        raise InvalidInput(f"{path}: not issued by this CA", field=str(path)) from None


def make_dir(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)
