"""Names and file layout of certificates, without cryptography: an idle node never loads
it (~11 MB); `certs` (which does) re-exports all of this."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from cronhive.errors import InvalidInput

__all__ = ["ADMIN_USER", "CertPaths", "default_ca_dir", "validate_name"]

ADMIN_USER = "admin"
# X.509 caps a CN at 64 characters; names double as file names, hence no "/" or leading ".".
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")


def validate_name(name: str, *, field: str = "name") -> str:
    """Returns `name` if it is a usable user or group name, else raises InvalidInput.

    1-64 characters from ``A-Z a-z 0-9 . _ @ -``, starting with a letter or digit.
    """
    if not _NAME_RE.fullmatch(name):
        raise InvalidInput(
            f"{field} {name!r} must be 1-64 characters of A-Z a-z 0-9 . _ @ -, "
            "starting with a letter or digit",
            field=field,
        )
    return name


def default_ca_dir(certs_dir: Path) -> Path:
    """Where the CA of a certificate directory lives unless told: beside it, outside it.

    ``X/certs`` -> ``X-ca`` (so the dev set-up's ``DATA_DIR/certs`` keeps its CA outside
    the data dir, and ``./.cronhive/certs`` uses ``./.cronhive-ca``); any other ``D`` ->
    ``D-ca``.
    """
    certs_dir = certs_dir.absolute()
    if certs_dir.name == "certs" and certs_dir.parent.name:
        return certs_dir.parent.with_name(f"{certs_dir.parent.name}-ca")
    return certs_dir.with_name(f"{certs_dir.name or 'root'}-ca")


@dataclass(frozen=True, kw_only=True)
class CertPaths:
    """Where the files of one certificate directory live (they need not exist yet).

    ``ca_dir`` holds the CA's own copy of ``ca.crt`` and its key (default:
    ``default_ca_dir(dir)``); ``dir`` holds ``ca.crt`` for verifying, never the key.
    """

    dir: Path
    ca_dir: Path | None = None

    @classmethod
    def of_dev(cls, data_dir: Path) -> CertPaths:
        """The development set-up's certificates of a node's data dir (auth.certs)."""
        return cls(dir=data_dir / "certs")

    @property
    def ca_home(self) -> Path:
        return self.ca_dir if self.ca_dir is not None else default_ca_dir(self.dir)

    @property
    def ca_cert(self) -> Path:
        return self.dir / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.ca_home / "ca.key"

    @property
    def legacy_ca_key(self) -> Path:
        """Where the key lived before it moved out (older versions put it in ``dir``)."""
        return self.dir / "ca.key"

    @property
    def server_cert(self) -> Path:
        return self.dir / "server.crt"

    @property
    def server_key(self) -> Path:
        return self.dir / "server.key"

    def client_cert(self, name: str = ADMIN_USER) -> Path:
        return self.dir / f"{validate_name(name)}.crt"

    def client_key(self, name: str = ADMIN_USER) -> Path:
        return self.dir / f"{validate_name(name)}.key"
