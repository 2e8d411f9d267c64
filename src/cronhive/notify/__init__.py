"""Reactions: where a job's notifications go (webhooks, mail, chained jobs) and how.

The outbox lives in the store (store/_outbox.py); the node's deliverer
(engine/deliverer.py) claims due deliveries and hands each to a transport here.
"""

from __future__ import annotations

from cronhive.notify._config import (
    Chain,
    Mail,
    Smtp,
    Target,
    Targets,
    Webhook,
    parse_smtp,
    parse_targets,
)
from cronhive.notify._rules import (
    EVENTS,
    check_defaults,
    check_notify,
    normalize,
    parse_notify_flags,
)

__all__ = [
    "EVENTS",
    "Chain",
    "Mail",
    "Smtp",
    "Target",
    "Targets",
    "Webhook",
    "check_defaults",
    "check_notify",
    "normalize",
    "parse_notify_flags",
    "parse_smtp",
    "parse_targets",
]
