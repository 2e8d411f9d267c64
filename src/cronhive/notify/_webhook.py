"""Webhook deliveries: a JSON POST signed with HMAC-SHA256 over timestamp and body.

The header, like Stripe's: `X-Cronhive-Signature: t=<unix seconds>,v1=<hex digest>`,
the digest of `f"{t}.".encode() + body` under the target's secret. A receiver recomputes
it, compares in constant time, and refuses old timestamps (replays); see
docs/notifications.md. `X-Cronhive-Delivery` is the same on every attempt of one
delivery, so a receiver can drop a repeat (an attempt whose answer was lost).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

import httpx

from cronhive.notify._config import Webhook

SIGNATURE = "X-Cronhive-Signature"
DELIVERY = "X-Cronhive-Delivery"
EVENT = "X-Cronhive-Event"
TOLERANCE = 300  # seconds a receiver should accept a timestamp for


class Permanent(Exception):
    """An answer that another attempt will not change (a 4xx)."""


def sign(secret: bytes, body: bytes, at: int) -> str:
    digest = hmac.new(secret, f"{at}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={at},v1={digest}"


def verify(secret: bytes, body: bytes, header: str, *, now: float | None = None) -> bool:
    """Whether `header` signs `body` under `secret`, recently (what receivers do)."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        at = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - at) > TOLERANCE:
        return False
    expected = sign(secret, body, at).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


def body_of(payload: Mapping[str, Any]) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()


async def post(
    client: httpx.AsyncClient, target: Webhook, delivery_id: str, payload: Mapping[str, Any]
) -> None:
    """Sends once. Raises `Permanent` on a 4xx (other than 408 and 429), another
    exception on anything worth retrying (network error, timeout, 5xx)."""
    body = body_of(payload)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "cronhive-notify/1",
        SIGNATURE: sign(target.secret, body, int(time.time())),
        DELIVERY: delivery_id,
        EVENT: str(payload.get("event", "")),
    }
    answer = await client.post(target.url, content=body, headers=headers, timeout=target.timeout)
    if answer.status_code < 300:
        return
    # The target's name, never its URL: a webhook URL often is a secret itself.
    why = f"HTTP {answer.status_code} from target {target.name}"
    if 400 <= answer.status_code < 500 and answer.status_code not in (408, 429):
        raise Permanent(why)
    raise RuntimeError(why)
