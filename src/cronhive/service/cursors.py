"""Page cursors: the keyset position of the last row a page sent, as an opaque string
(base64 of a JSON list). The gRPC API's page tokens and the web's `next` are these."""

from __future__ import annotations

import base64
import binascii
import json

from cronhive.errors import InvalidInput

__all__ = ["MAX_CURSOR", "decode", "encode"]

MAX_CURSOR = 1024  # characters


def encode(values: list[str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


def decode(text: str, arity: int, field: str) -> list[str]:
    """The `arity` strings of a cursor made by `encode` (padded or not); InvalidInput
    naming `field` for anything else."""
    bad = InvalidInput(f"{field}: not a cursor this server made", field=field)
    if len(text) > MAX_CURSOR:
        raise bad
    try:
        values = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (binascii.Error, ValueError, UnicodeError):
        raise bad from None
    if (
        not isinstance(values, list)
        or len(values) != arity
        or not all(isinstance(v, str) and _encodable(v) for v in values)
    ):
        raise bad
    return values


def _encodable(text: str) -> bool:
    """False for a string no database can take (a lone surrogate from a JSON escape)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
