"""The JSON API under /api/v1: the same reads and actions as the pages, for scripts.

Authenticated by ``Authorization: Bearer <token>`` or by a session cookie (then a
state-changing call also needs ``X-CSRF-Token``). Errors are ``{"error": message}`` with
the status of `_errors.STATUS`; something the caller may not see is a 404 like a
missing id. The OpenAPI document (`_openapi.py`) describes every route here.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from contextlib import aclosing
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cronhive.auth import Identity
from cronhive.errors import InvalidInput
from cronhive.model import RunState, Stream
from cronhive.web._convert import (
    chunk_json,
    decode_cursor,
    decode_run_cursor,
    encode_cursor,
    job_json,
    node_json,
    run_json,
)
from cronhive.web._errors import status_of
from cronhive.web._openapi import openapi_document
from cronhive.web._ops import Web

__all__ = ["MAX_LIMIT", "routes"]

MAX_LIMIT = 1000
Handler = Callable[[Request, Web, Identity], Awaitable[Any]]


def _error(status: int, message: str) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def endpoint(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """Authenticates, runs `handler`, answers JSON; our errors become their statuses."""

    async def run(request: Request) -> Response:
        web: Web = request.app.state.web
        try:
            caller = await request.app.state.sessions.caller(request, web.clock.now())
            return JSONResponse(await handler(request, web, caller.identity))
        except Exception as exc:
            status = status_of(exc)
            if status is None or status == 500:
                raise
            return _error(status, str(exc))

    return run


def int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    text = request.query_params.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise InvalidInput(f"{name}: expected a whole number", field=name) from None
    if not low <= value <= high:
        raise InvalidInput(f"{name}: expected {low}..{high}", field=name)
    return value


def streams_param(request: Request) -> frozenset[Stream]:
    text = request.query_params.get("stream", "both")
    if text == "both":
        return frozenset(Stream)
    try:
        return frozenset({Stream(text)})
    except ValueError:
        raise InvalidInput("stream: expected stdout, stderr or both", field="stream") from None


def _before(request: Request) -> tuple[datetime, Any] | None:
    text = request.query_params.get("before")
    if text is None:
        return None
    return decode_run_cursor(text, "before")


async def _runs_page(request: Request, web: Web, who: Identity, job: Any = None) -> dict[str, Any]:
    limit = int_param(request, "limit", 50, 1, MAX_LIMIT)
    state = request.query_params.get("state")
    try:
        states = None if state is None else {RunState(state)}
    except ValueError:
        raise InvalidInput("state: not a run state", field="state") from None
    rows = await web.runs(who, job=job, states=states, before=_before(request), limit=limit + 1)
    names = await web.node_names()
    page = rows[:limit]
    nxt = None
    if len(rows) > limit:
        nxt = encode_cursor([page[-1].queued_at.isoformat(), str(page[-1].id)])
    return {"runs": [run_json(r, names) for r in page], "next": nxt}


async def list_jobs(request: Request, web: Web, who: Identity) -> Any:
    limit = int_param(request, "limit", 100, 1, MAX_LIMIT)
    after_text = request.query_params.get("after")
    after = None
    if after_text is not None:
        owner, name = decode_cursor(after_text, 2, "after")
        after = (owner, name)
    rows = await web.jobs(who, after=after, limit=limit + 1)
    page = rows[:limit]
    nxt = encode_cursor([page[-1].owner, page[-1].name]) if len(rows) > limit else None
    return {"jobs": [job_json(j) for j in page], "next": nxt}


async def get_job(request: Request, web: Web, who: Identity) -> Any:
    return job_json(await web.job(who, request.path_params["job_id"]))


async def job_runs(request: Request, web: Web, who: Identity) -> Any:
    job = await web.job(who, request.path_params["job_id"])
    return await _runs_page(request, web, who, job)


async def list_runs(request: Request, web: Web, who: Identity) -> Any:
    return await _runs_page(request, web, who)


async def get_run(request: Request, web: Web, who: Identity) -> Any:
    run = await web.run(who, request.path_params["run_id"])
    return run_json(run, await web.node_names())


async def run_output(request: Request, web: Web, who: Identity) -> Any:
    run = await web.run(who, request.path_params["run_id"])
    streams = streams_param(request)
    after = int_param(request, "after_seq", -1, -1, 2**62)
    limit = int_param(request, "limit", 256, 1, MAX_LIMIT)
    chunks: list[dict[str, Any]] = []
    async with aclosing(web.output(who, run, streams=streams, after_seq=after)) as output:
        async for chunk in output:
            chunks.append(chunk_json(chunk))
            if len(chunks) >= limit:
                break
    return {"state": str(run.state), "done": run.state.terminal, "chunks": chunks}


async def list_nodes(request: Request, web: Web, who: Identity) -> Any:
    now = web.clock.now()
    return {"nodes": [node_json(n, now) for n in await web.nodes(who)]}


async def trigger(request: Request, web: Web, who: Identity) -> Any:
    job = await web.job(who, request.path_params["job_id"])
    env, args = await _parameters(request)
    return run_json(await web.trigger(who, job, env, args))


async def _parameters(request: Request) -> tuple[dict[str, str], list[str]]:
    """A trigger's optional JSON body: `{"env": {"K": "V"}, "args": ["..."]}`."""
    body = await request.body()
    if not body.strip():
        return {}, []
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput("body: not JSON", field="body") from None
    if not isinstance(doc, dict) or set(doc) - {"env", "args"}:
        raise InvalidInput('body: expected {"env": {...}, "args": [...]}', field="body")
    env, args = doc.get("env", {}), doc.get("args", [])
    if not isinstance(env, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in env.items()
    ):
        raise InvalidInput("env: expected an object of strings", field="env")
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise InvalidInput("args: expected a list of strings", field="args")
    return env, args


async def pause(request: Request, web: Web, who: Identity) -> Any:
    job = await web.job(who, request.path_params["job_id"])
    return job_json(await web.set_enabled(who, job, False))


async def resume(request: Request, web: Web, who: Identity) -> Any:
    job = await web.job(who, request.path_params["job_id"])
    return job_json(await web.set_enabled(who, job, True))


async def stop(request: Request, web: Web, who: Identity) -> Any:
    run = await web.run(who, request.path_params["run_id"])
    return run_json(await web.stop(who, run), await web.node_names())


async def openapi(request: Request) -> Response:
    return JSONResponse(openapi_document())


def routes() -> list[Route]:
    p = "/api/v1"
    return [
        Route(f"{p}/openapi.json", openapi, methods=["GET"]),
        Route(f"{p}/jobs", endpoint(list_jobs), methods=["GET"]),
        Route(f"{p}/jobs/{{job_id}}", endpoint(get_job), methods=["GET"]),
        Route(f"{p}/jobs/{{job_id}}/runs", endpoint(job_runs), methods=["GET"]),
        Route(f"{p}/jobs/{{job_id}}/trigger", endpoint(trigger), methods=["POST"]),
        Route(f"{p}/jobs/{{job_id}}/pause", endpoint(pause), methods=["POST"]),
        Route(f"{p}/jobs/{{job_id}}/resume", endpoint(resume), methods=["POST"]),
        Route(f"{p}/runs", endpoint(list_runs), methods=["GET"]),
        Route(f"{p}/runs/{{run_id}}", endpoint(get_run), methods=["GET"]),
        Route(f"{p}/runs/{{run_id}}/output", endpoint(run_output), methods=["GET"]),
        Route(f"{p}/runs/{{run_id}}/stop", endpoint(stop), methods=["POST"]),
        Route(f"{p}/nodes", endpoint(list_nodes), methods=["GET"]),
    ]
