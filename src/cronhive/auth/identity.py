"""Who is calling: the identity named by a verified client certificate, plus policy roles.

The TLS layer has already verified the certificate chain against our CA before any of
this runs; here we only read the subject. ``CN`` is the user (exactly one, or the caller
is refused), each ``OU`` is a group. The policy (`cronhive.auth.policy`) then adds roles
and further groups.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from cronhive.auth._paths import validate_name
from cronhive.errors import InvalidInput, PermissionDenied

if TYPE_CHECKING:
    from grpclib.server import Stream

    from cronhive.auth.policy import Policy

__all__ = ["Identity", "Role", "identity_from_peercert", "identity_of", "subject_of"]

PeerCert = Mapping[str, Any] | bytes


class Role(StrEnum):
    """What a user may do beyond managing what they own."""

    ADMIN = "admin"  # sees and manages everything
    SCHEDULER = "scheduler"  # may create scheduled jobs


@dataclass(frozen=True, kw_only=True)
class Identity:
    """An authenticated caller: user name, group memberships (certificate OUs plus policy
    groups) and roles (from the policy)."""

    user: str
    groups: frozenset[str] = field(default_factory=frozenset)
    roles: frozenset[Role] = field(default_factory=frozenset)

    @property
    def is_admin(self) -> bool:
        return Role.ADMIN in self.roles

    @property
    def owner(self) -> str:
        """The owner string of things this user owns personally: ``user:<name>``."""
        return f"user:{self.user}"


def _from_dict(cert: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    cns: list[str] = []
    ous: list[str] = []
    # getpeercert(): {"subject": ((("commonName", "alice"),), (("organizationalUnitName",
    # "ops"),), ...)}; each inner tuple is one RDN, which may hold several attributes.
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                cns.append(value)
            elif key == "organizationalUnitName":
                ous.append(value)
    return cns, ous


def _from_der(der: bytes) -> tuple[list[str], list[str]]:
    from cryptography import x509  # here: an idle node never loads it (~11 MB)
    from cryptography.x509.oid import NameOID

    try:
        subject = x509.load_der_x509_certificate(der).subject
    except ValueError:
        raise PermissionDenied("the client certificate cannot be parsed") from None

    def values(oid: x509.ObjectIdentifier) -> list[str]:
        return [str(a.value) for a in subject.get_attributes_for_oid(oid)]

    return values(NameOID.COMMON_NAME), values(NameOID.ORGANIZATIONAL_UNIT_NAME)


def subject_of(cert: PeerCert | None) -> tuple[str, frozenset[str]]:
    """Returns (user, groups) from a peer certificate: the dict of
    ``SSLSocket.getpeercert()`` or the DER bytes of ``getpeercert(binary_form=True)``.

    Raises PermissionDenied when there is no certificate, not exactly one CN, or a CN/OU
    that is not a valid name.
    """
    if not cert:
        raise PermissionDenied("no client certificate")
    cns, ous = _from_der(cert) if isinstance(cert, bytes) else _from_dict(cert)
    if len(cns) != 1:
        raise PermissionDenied(f"the client certificate must name exactly one CN, has {len(cns)}")
    try:
        user = validate_name(cns[0], field="certificate CN")
        groups = frozenset(validate_name(g, field="certificate OU") for g in ous)
    except InvalidInput as exc:
        raise PermissionDenied(str(exc)) from None
    return user, groups


def identity_from_peercert(cert: PeerCert | None, policy: Policy | None = None) -> Identity:
    """The Identity of the holder of a verified peer certificate under `policy`
    (the default policy when None; see `cronhive.auth.policy`).

    Raises PermissionDenied as `subject_of` does.
    """
    from cronhive.auth.policy import DEFAULT_POLICY  # policy imports this module

    user, groups = subject_of(cert)
    return (policy or DEFAULT_POLICY).identity(user, groups)


def identity_of(stream: Stream[Any, Any], policy: Policy | None = None) -> Identity:
    """The Identity of the caller of a grpclib RPC (``stream.peer.cert()``).

    Raises PermissionDenied when the connection carries no usable client certificate
    (cannot happen behind `server_context`, which requires one).
    """
    return identity_from_peercert(stream.peer.cert(), policy)
