"""auth: certificates, TLS 1.3 contexts, caller identity, policy and authorization.

certs     create a CA, issue server/client certificates, ensure_dev_certs()
tls       server_context() / client_context(): TLS 1.3 only, mutual, our CA only
identity  Identity, Role, identity_of(stream) from the verified client certificate
policy    the TOML policy file (roles, groups, run_as grants, limits) and its default
quotas    the per-owner limits, enforced (jobs, queued runs, shortest interval, caps)
authz     the one place that decides who may see and do what
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cronhive.auth._paths import CertPaths
from cronhive.auth.authz import (
    can_access,
    check_can_schedule,
    check_run_as,
    parse_owner,
    require_access,
    resolve_owner,
    visible_owners,
)
from cronhive.auth.identity import Identity, Role, identity_from_peercert, identity_of
from cronhive.auth.policy import DEFAULT_POLICY, Policy, load_policy
from cronhive.auth.tls import client_context, server_context

if TYPE_CHECKING:
    from cronhive.auth.certs import ensure_dev_certs

__all__ = [
    "DEFAULT_POLICY",
    "CertPaths",
    "Identity",
    "Policy",
    "Role",
    "can_access",
    "check_can_schedule",
    "check_run_as",
    "client_context",
    "ensure_dev_certs",
    "identity_from_peercert",
    "identity_of",
    "load_policy",
    "parse_owner",
    "require_access",
    "resolve_owner",
    "server_context",
    "visible_owners",
]


def __getattr__(name: str) -> Any:
    # certs (cryptography, ~11 MB) on first use: a node never needs it (see auth._check).
    if name == "ensure_dev_certs":
        from cronhive.auth.certs import ensure_dev_certs

        return ensure_dev_certs
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
