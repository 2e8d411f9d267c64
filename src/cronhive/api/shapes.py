"""The one JSON shape of every object (job, run, node, event, notification, token), for
the web's JSON API and the CLI's ``--json`` alike, and its JSON Schema for the OpenAPI
document: both derived from the proto messages (cronhive/v1), walked by descriptor.

The rules, the same for every message:
- every field is present, under its proto name; absent values are null: an unset
  message or timestamp, a proto3 `optional` scalar not set, and an empty string (an
  empty string means "none" in these messages), except the fields of `KEEP_EMPTY`;
- timestamps are RFC 3339 in UTC with a ``Z`` (``2026-03-01T12:00:00Z``); 64-bit
  integers are JSON numbers; maps are objects with sorted keys;
- three read better otherwise: repeated `NotifyRule`s are one object
  ``{event: [targets]}``, `payload_json` is the parsed ``payload``, and `RunLimits`
  holds only the limits set (null when none is).
"""

from __future__ import annotations

import json
from datetime import UTC
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from cronhive.api._generated.cronhive.v1 import cronhive_pb2 as pb

__all__ = ["KEEP_EMPTY", "SHAPED", "schema_of", "shape"]

# Strings that stay "" when empty (text someone wrote, or a name).
KEEP_EMPTY = frozenset({"description", "message", "name", "expression", "owner"})

# The objects with a shape, by the name the OpenAPI document gives them.
SHAPED: dict[str, Descriptor] = {
    "Job": pb.Job.DESCRIPTOR,
    "Run": pb.Execution.DESCRIPTOR,
    "Node": pb.Node.DESCRIPTOR,
    "Event": pb.Event.DESCRIPTOR,
    "Notification": pb.Notification.DESCRIPTOR,
    "Token": pb.Token.DESCRIPTOR,
}

# protobuf's FieldDescriptor, of its C (upb) or Python implementation: typed loosely.
Field = Any

_TIMESTAMP = "google.protobuf.Timestamp"
_RULE = "cronhive.v1.NotifyRule"
_SPARSE = frozenset({"cronhive.v1.RunLimits"})  # only the fields set; none set: null
_INTS = {
    FieldDescriptor.TYPE_INT32,
    FieldDescriptor.TYPE_INT64,
    FieldDescriptor.TYPE_UINT32,
    FieldDescriptor.TYPE_UINT64,
    FieldDescriptor.TYPE_SINT32,
    FieldDescriptor.TYPE_SINT64,
}


def _key(field: Field) -> str:
    return "payload" if field.name == "payload_json" else field.name


def _is_map(field: Field) -> bool:
    return field.message_type is not None and field.message_type.GetOptions().map_entry


def _instant(stamp: Any) -> str:
    return str(stamp.ToDatetime(tzinfo=UTC).isoformat().replace("+00:00", "Z"))


def _scalar(field: Field, value: Any) -> Any:
    if field.message_type is not None:
        if field.message_type.full_name == _TIMESTAMP:
            return _instant(value)
        if field.message_type.full_name in _SPARSE:
            return {f.name: v for f, v in value.ListFields()} or None
        return shape(value)
    return value


def _value(msg: Message, field: Field) -> Any:
    value = getattr(msg, field.name)
    if _is_map(field):
        entry = field.message_type.fields_by_name["value"]
        return {k: _scalar(entry, value[k]) for k in sorted(value)}
    if field.is_repeated:
        if field.message_type is not None and field.message_type.full_name == _RULE:
            return {r.event: list(r.targets) for r in value}
        return [_scalar(field, v) for v in value]
    if field.has_presence and not msg.HasField(field.name):
        return None
    if field.name == "payload_json":
        return json.loads(value) if value else None
    if field.type == FieldDescriptor.TYPE_STRING and value == "" and field.name not in KEEP_EMPTY:
        return None
    return _scalar(field, value)


def shape(msg: Message) -> dict[str, Any]:
    """`msg` as JSON-ready values (see the module docstring)."""
    return {_key(f): _value(msg, f) for f in msg.DESCRIPTOR.fields}


# --- the same rules as JSON Schema (OpenAPI 3.1) ---------------------------------------


def _scalar_schema(field: Field, refs: dict[str, str]) -> dict[str, Any]:
    if field.message_type is not None:
        if field.message_type.full_name == _TIMESTAMP:
            return {"type": "string", "format": "date-time"}
        return {"$ref": refs[field.message_type.full_name]}
    if field.type in _INTS:
        return {"type": "integer"}
    if field.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return {"type": "number"}
    if field.type == FieldDescriptor.TYPE_BOOL:
        return {"type": "boolean"}
    return {"type": "string"}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in schema:
        return {"anyOf": [schema, {"type": "null"}]}
    return {**schema, "type": [schema["type"], "null"]}


def _field_schema(field: Field, refs: dict[str, str]) -> dict[str, Any]:
    if _is_map(field):
        entry = field.message_type.fields_by_name["value"]
        return {"type": "object", "additionalProperties": _scalar_schema(entry, refs)}
    if field.is_repeated:
        if field.message_type is not None and field.message_type.full_name == _RULE:
            return {
                "type": "object",
                "additionalProperties": {"type": "array", "items": {"type": "string"}},
            }
        return {"type": "array", "items": _scalar_schema(field, refs)}
    if field.name == "payload_json":
        return {"type": ["object", "null"]}
    schema = _scalar_schema(field, refs)
    if field.has_presence or (
        field.type == FieldDescriptor.TYPE_STRING and field.name not in KEEP_EMPTY
    ):
        return _nullable(schema)
    return schema


def schema_of(descriptor: Descriptor, refs: dict[str, str]) -> dict[str, Any]:
    """The JSON Schema of `shape` of a `descriptor` message; `refs` maps the full names
    of nested messages to their `$ref`s."""
    if descriptor.full_name in _SPARSE:
        return {
            "type": "object",
            "additionalProperties": False,
            "minProperties": 1,
            "properties": {f.name: _scalar_schema(f, refs) for f in descriptor.fields},
        }
    return {
        "type": "object",
        "additionalProperties": False,
        "required": [_key(f) for f in descriptor.fields],
        "properties": {_key(f): _field_schema(f, refs) for f in descriptor.fields},
    }
