"""Model objects as the JSON the API answers: the one shape of each (api.shapes, from
the proto messages, as the CLI's --json prints them), and the API's cursors."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from cronhive.api.convert import event_pb, job_pb, node_pb, notification_pb, run_pb
from cronhive.api.shapes import shape
from cronhive.errors import InvalidInput
from cronhive.model import Delivery, Event, Job, Node, OutputChunk
from cronhive.service import RunView, cursors

__all__ = [
    "chunk_json",
    "decode_cursor",
    "decode_run_cursor",
    "delivery_json",
    "encode_cursor",
    "event_json",
    "job_json",
    "node_json",
    "run_json",
]


def job_json(job: Job, warning: str = "") -> dict[str, Any]:
    msg = job_pb(job)
    msg.warning = warning
    return shape(msg)


def run_json(view: RunView) -> dict[str, Any]:
    return shape(run_pb(view))


def node_json(node: Node, now: datetime) -> dict[str, Any]:
    return shape(node_pb(node, now))


def event_json(event: Event) -> dict[str, Any]:
    return shape(event_pb(event))


def delivery_json(delivery: Delivery) -> dict[str, Any]:
    return shape(notification_pb(delivery))


def chunk_json(chunk: OutputChunk) -> dict[str, Any]:
    return {
        "stream": str(chunk.stream),
        "offset": chunk.offset,
        "seq": chunk.seq,
        "text": chunk.data.decode("utf-8", errors="replace"),
    }


encode_cursor = cursors.encode
decode_cursor = cursors.decode


def decode_run_cursor(text: str, field: str = "before") -> tuple[datetime, UUID]:
    """The (queued_at, id) of a runs cursor made by `encode_cursor`; InvalidInput naming
    `field` for anything else (a naive time, a bad UUID...)."""
    at, run_id = decode_cursor(text, 2, field)
    try:
        when, uuid = datetime.fromisoformat(at), UUID(run_id)
    except ValueError:
        raise InvalidInput(f"{field}: not a cursor this server made", field=field) from None
    if when.tzinfo is None or when.utcoffset() is None:
        raise InvalidInput(f"{field}: not a cursor this server made", field=field)
    return when, uuid
