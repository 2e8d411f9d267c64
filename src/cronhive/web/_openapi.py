"""The OpenAPI 3.1 document of /api/v1, generated: the paths from the JSON API's route
table (`_jsonapi.ROUTES`), the objects' schemas from their one shape (api.shapes, from
the proto messages), the enums from the model's. Nothing here is written twice.

Served at /api/v1/openapi.json; the schemathesis tests check the server against it.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from google.protobuf.descriptor import Descriptor

from cronhive.api.shapes import SHAPED, schema_of
from cronhive.model import Concurrency, DeliveryState, Misfire, NotifyOn, RunState, Stream
from cronhive.web._jsonapi import MAX_LIMIT, PREFIX, ROUTES, ApiRoute

__all__ = ["openapi_document"]

_STR: dict[str, Any] = {"type": "string"}

# Fields whose strings are one of a model enum's values: (schema name, field) -> values.
_ENUMS: dict[tuple[str, str], list[str]] = {
    ("Run", "state"): [s.value for s in RunState],
    ("Job", "last_state"): [s.value for s in RunState],
    ("Job", "concurrency"): [c.value for c in Concurrency],
    ("Job", "misfire"): [m.value for m in Misfire],
    ("Node", "state"): ["up", "expired", "down"],
    ("Notification", "state"): [s.value for s in DeliveryState],
    ("Notification", "event"): [e.value for e in NotifyOn],
}

_QUERY: dict[str, tuple[dict[str, Any], str]] = {
    "limit": ({"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}, "page size"),
    "after": (_STR, "the `next` cursor of the previous page"),
    "before": (_STR, "the `next` cursor of the previous page"),
    "state": ({"type": "string", "enum": [s.value for s in RunState]}, "only runs in this state"),
    "stream": ({"type": "string", "enum": [*(s.value for s in Stream), "both"]}, "streams"),
    "after_seq": ({"type": "integer", "minimum": -1}, "chunks after this seq"),
    "after_id": ({"type": "integer", "minimum": 0}, "events after this id (the `next`)"),
    "job_id": (_STR, "only those of this job"),
}

_BODIES: dict[str, tuple[str, dict[str, Any]]] = {
    "trigger": (
        "this run's parameters: env over the job's, args after its command",
        {
            "type": "object",
            "properties": {
                "env": {"type": "object", "additionalProperties": _STR},
                "args": {"type": "array", "items": _STR},
            },
            "additionalProperties": False,
        },
    ),
    "notify": (
        "the triggers, {event: [target, ...]}: targets of the node configuration",
        {
            "type": "object",
            "propertyNames": {"enum": [e.value for e in NotifyOn]},
            "additionalProperties": {"type": "array", "items": _STR},
        },
    ),
}

_ERRORS = (
    (400, "bad input (the message names the parameter)"),
    (401, "no usable token or session"),
    (403, "a session without its CSRF token, or an action not granted"),
    (404, "no such thing, or one you may not see (never told apart)"),
    (409, "conflicts with what is stored"),
    (429, "an owner's limit reached (queued runs: see the policy's [limits])"),
    (503, "the database is unavailable"),
)


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(props: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": sorted(props),
        "properties": props,
        "additionalProperties": False,
    }


def _schemas() -> dict[str, Any]:
    """Every shaped object and the messages nested in them, by name."""
    named: dict[str, Descriptor] = dict(SHAPED)
    todo = list(SHAPED.values())
    while todo:
        for f in todo.pop().fields:
            m = f.message_type
            if m is None or m.GetOptions().map_entry or m.full_name.startswith("google."):
                continue
            if m.full_name != "cronhive.v1.NotifyRule" and m not in named.values():
                named[m.name] = m
                todo.append(m)
    refs = {d.full_name: f"#/components/schemas/{name}" for name, d in named.items()}
    schemas: dict[str, Any] = {name: schema_of(d, refs) for name, d in named.items()}
    for (name, field), values in _ENUMS.items():
        prop = schemas[name]["properties"][field]
        nullable = isinstance(prop["type"], list)
        prop["enum"] = [*values, None] if nullable else values
    schemas["Chunk"] = _obj(
        {
            "stream": {"type": "string", "enum": [s.value for s in Stream]},
            "offset": {"type": "integer"},
            "seq": {"type": "integer"},
            "text": _STR,
        }
    )
    schemas["Output"] = _obj(
        {
            "state": {"type": "string", "enum": [s.value for s in RunState]},
            "done": {"type": "boolean"},
            "chunks": {"type": "array", "items": _ref("Chunk")},
        }
    )
    schemas["Error"] = {"type": "object", "required": ["error"], "properties": {"error": _STR}}
    return schemas


def _answer(route: ApiRoute) -> dict[str, Any]:
    if route.list_of is None:
        assert route.answers is not None
        return _ref(route.answers)
    key = route.list_of.lower() + "s"
    props: dict[str, Any] = {key: {"type": "array", "items": _ref(route.list_of)}}
    if route.paged:
        props["next"] = {"type": ["integer" if route.list_of == "Event" else "string", "null"]}
    return _obj(props)


def _response(text: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": text, "content": {"application/json": {"schema": schema}}}


def _operation(route: ApiRoute) -> dict[str, Any]:
    params = [
        {"name": name, "in": "path", "required": True, "schema": _STR}
        for name in re.findall(r"{(\w+)}", route.path)
    ]
    params += [
        {
            "name": q,
            "in": "query",
            "required": False,
            "schema": _QUERY[q][0],
            "description": _QUERY[q][1],
        }
        for q in route.query
    ]
    words = route.handler.__name__.split("_")
    op: dict[str, Any] = {
        "operationId": words[0] + "".join(w.title() for w in words[1:]),
        "summary": route.summary,
        "parameters": params,
        "responses": {
            "200": {
                "description": "OK",
                "content": {"application/json": {"schema": _answer(route)}},
            },
            **{
                str(code): {
                    "description": text,
                    "content": {"application/json": {"schema": _ref("Error")}},
                }
                for code, text in _ERRORS
            },
        },
    }
    if route.body is not None:
        text, schema = _BODIES[route.body]
        op["requestBody"] = {
            "required": route.body != "trigger",
            "description": text,
            "content": {"application/json": {"schema": schema}},
        }
    return op


@cache
def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of the JSON API (a fresh copy is not needed: read only)."""
    paths: dict[str, dict[str, Any]] = {}
    for route in ROUTES:
        paths.setdefault(PREFIX + route.path, {})[route.method.lower()] = _operation(route)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "cronhive JSON API",
            "version": "1",
            "description": "Jobs, runs, output, nodes, events and notifications you may "
            "see; each object in the shape `cronhive ... --json` prints; see docs/web.md.",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}, {"session": []}],
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "chv_... token"},
                "session": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": "cronhive_session",
                    "description": "browser session; writes also need X-CSRF-Token",
                },
            },
        },
        "paths": paths,
    }
