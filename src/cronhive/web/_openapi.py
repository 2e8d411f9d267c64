"""The OpenAPI 3 document of /api/v1, built once from a few schema helpers.

Served at /api/v1/openapi.json; the schemathesis tests check the server against it.
"""

from __future__ import annotations

from functools import cache
from typing import Any

__all__ = ["openapi_document"]

_T = {"type": "string", "format": "date-time"}
_UUID = {"type": "string", "format": "uuid"}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def _obj(props: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": sorted(props),
        "properties": props,
        "additionalProperties": False,
    }


_STR = {"type": "string"}
_INT = {"type": "integer"}
_STATES = ["queued", "running", "succeeded", "failed", "timed_out", "stopped", "lost", "skipped"]

SCHEMAS: dict[str, Any] = {
    "Script": _obj(
        {
            "digest": _STR,
            "interpreter": {"type": "array", "items": _STR},
            "name": _STR,
            "size": _INT,
        }
    ),
    # A run's own limits: only the fields set appear (memory_bytes, processes, ...).
    "Limits": {"type": "object", "additionalProperties": _INT},
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {"error": _STR},
    },
    "Schedule": _obj({"kind": _STR, "expression": _STR, "timezone": _STR, "description": _STR}),
    "Sql": _obj(
        {"statement": _STR, "database": _STR, "role": _STR, "autocommit": {"type": "boolean"}}
    ),
    "Job": _obj(
        {
            "id": _UUID,
            "name": _STR,
            "owner": _STR,
            "command": {"type": "array", "items": _STR},
            "shell": {"type": "boolean"},
            "schedule": _nullable({"$ref": "#/components/schemas/Schedule"}),
            "enabled": {"type": "boolean"},
            "description": _STR,
            "target_tags": {"type": "array", "items": _STR},
            "timeout_seconds": _nullable({"type": "number"}),
            "concurrency": _STR,
            "next_fire_at": _nullable(_T),
            "last_run_at": _nullable(_T),
            "last_state": _nullable({"type": "string", "enum": _STATES}),
            "quarantine": _nullable({"type": "string"}),
            "success_count": _INT,
            "failure_count": _INT,
            "created_at": _T,
            "updated_at": _T,
            "sql": _nullable({"$ref": "#/components/schemas/Sql"}),
            "script": _nullable({"$ref": "#/components/schemas/Script"}),
            "limits": _nullable({"$ref": "#/components/schemas/Limits"}),
        }
    ),
    "Run": _obj(
        {
            "id": _UUID,
            "job_id": _nullable(_UUID),
            "job_name": _nullable(_STR),
            "owner": _STR,
            "command": {"type": "array", "items": _STR},
            "env": {"type": "object", "additionalProperties": _STR},
            "sql": _nullable({"$ref": "#/components/schemas/Sql"}),
            "script": _nullable({"$ref": "#/components/schemas/Script"}),
            "state": {"type": "string", "enum": _STATES},
            "reason": _nullable(_STR),
            "attempt": _INT,
            "scheduled_for": _T,
            "queued_at": _T,
            "started_at": _nullable(_T),
            "finished_at": _nullable(_T),
            "exit_code": _nullable(_INT),
            "signal": _nullable(_INT),
            "node_id": _nullable(_UUID),
            "node_name": _nullable(_STR),
            "stop_requested": {"type": "boolean"},
            "stdout_bytes": _INT,
            "stderr_bytes": _INT,
            "limits": _nullable({"$ref": "#/components/schemas/Limits"}),
            "limits_applied": _nullable(_STR),
        }
    ),
    "Node": _obj(
        {
            "id": _UUID,
            "name": _STR,
            "tags": {"type": "array", "items": _STR},
            "capacity": _INT,
            "running": _INT,
            "started_at": _T,
            "heartbeat_at": _T,
            "heartbeat_age_seconds": {"type": "number"},
            "alive": {"type": "boolean"},
            "state": {"type": "string", "enum": ["up", "expired", "down"]},
            "down_since": _nullable(_T),
            "down_reason": _nullable({"type": "string"}),
        }
    ),
    "Chunk": _obj(
        {
            "stream": {"type": "string", "enum": ["stdout", "stderr"]},
            "offset": _INT,
            "seq": _INT,
            "text": _STR,
        }
    ),
}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _page(key: str, item: str) -> dict[str, Any]:
    return _obj({key: {"type": "array", "items": _ref(item)}, "next": _nullable(_STR)})


def _query(name: str, schema: dict[str, Any], text: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": text}


def _path(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


_TRIGGER = {
    "type": "object",
    "properties": {
        "env": {"type": "object", "additionalProperties": _STR},
        "args": {"type": "array", "items": _STR},
    },
    "additionalProperties": False,
}
_ERRORS = {
    str(code): {
        "description": text,
        "content": {"application/json": {"schema": _ref("Error")}},
    }
    for code, text in (
        (400, "bad input (the message names the parameter)"),
        (401, "no usable token or session"),
        (403, "a session without its CSRF token, or an action not granted"),
        (404, "no such thing, or one you may not see (never told apart)"),
        (409, "conflicts with what is stored"),
        (429, "an owner's limit reached (queued runs: see the policy's [limits])"),
        (503, "the database is unavailable"),
    )
}
_LIMIT = _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "page size")
_BEFORE = _query("before", _STR, "the `next` cursor of the previous page")


def _op(
    summary: str,
    schema: dict[str, Any],
    *,
    params: list[dict[str, Any]] | None = None,
    op_id: str,
) -> dict[str, Any]:
    return {
        "operationId": op_id,
        "summary": summary,
        "parameters": params or [],
        "responses": {
            "200": {"description": "OK", "content": {"application/json": {"schema": schema}}},
            **_ERRORS,
        },
    }


@cache
def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of the JSON API (a fresh copy is not needed: read only)."""
    job_id, run_id = _path("job_id"), _path("run_id")
    runs_params = [
        _LIMIT,
        _BEFORE,
        _query("state", {"type": "string", "enum": _STATES}, "only runs in this state"),
    ]
    output_params = [
        _query("stream", {"type": "string", "enum": ["stdout", "stderr", "both"]}, "streams"),
        _query("after_seq", {"type": "integer", "minimum": -1}, "chunks after this seq"),
        _LIMIT,
    ]
    output = _obj(
        {
            "state": {"type": "string", "enum": _STATES},
            "done": {"type": "boolean"},
            "chunks": {"type": "array", "items": _ref("Chunk")},
        }
    )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "cronhive JSON API",
            "version": "1",
            "description": "Jobs, runs, output and nodes you may see; see docs/web.md.",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}, {"session": []}],
        "components": {
            "schemas": SCHEMAS,
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
        "paths": {
            "/api/v1/jobs": {
                "get": _op(
                    "Jobs you may see, by owner and name",
                    _page("jobs", "Job"),
                    params=[_LIMIT, _query("after", _STR, "the `next` cursor")],
                    op_id="listJobs",
                )
            },
            "/api/v1/jobs/{job_id}": {
                "get": _op("One job", _ref("Job"), params=[job_id], op_id="getJob")
            },
            "/api/v1/jobs/{job_id}/runs": {
                "get": _op(
                    "A job's runs, newest first",
                    _page("runs", "Run"),
                    params=[job_id, *runs_params],
                    op_id="listJobRuns",
                )
            },
            "/api/v1/jobs/{job_id}/trigger": {
                "post": {
                    **_op("Run the job now", _ref("Run"), params=[job_id], op_id="triggerJob"),
                    "requestBody": {
                        "required": False,
                        "description": "this run's parameters: env over the job's, args "
                        "after its command",
                        "content": {"application/json": {"schema": _TRIGGER}},
                    },
                }
            },
            "/api/v1/jobs/{job_id}/pause": {
                "post": _op("Pause the job", _ref("Job"), params=[job_id], op_id="pauseJob")
            },
            "/api/v1/jobs/{job_id}/resume": {
                "post": _op("Resume the job", _ref("Job"), params=[job_id], op_id="resumeJob")
            },
            "/api/v1/runs": {
                "get": _op(
                    "Runs you may see, newest first",
                    _page("runs", "Run"),
                    params=runs_params,
                    op_id="listRuns",
                )
            },
            "/api/v1/runs/{run_id}": {
                "get": _op("One run", _ref("Run"), params=[run_id], op_id="getRun")
            },
            "/api/v1/runs/{run_id}/output": {
                "get": _op(
                    "Output stored so far (poll with after_seq; the page tails it live)",
                    output,
                    params=[run_id, *output_params],
                    op_id="getRunOutput",
                )
            },
            "/api/v1/runs/{run_id}/stop": {
                "post": _op("Stop the run", _ref("Run"), params=[run_id], op_id="stopRun")
            },
            "/api/v1/nodes": {
                "get": _op(
                    "Nodes of the cluster",
                    _obj({"nodes": {"type": "array", "items": _ref("Node")}}),
                    op_id="listNodes",
                )
            },
        },
    }
