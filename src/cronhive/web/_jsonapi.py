"""The JSON API under /api/v1: the same operations as the pages and the gRPC API (all
of them cronhive.service's), for scripts; every object in its one shape (api.shapes).

Authenticated by ``Authorization: Bearer <token>`` or by a session cookie (then a
state-changing call also needs ``X-CSRF-Token``). Errors are ``{"error": message}`` with
the status of `_errors.STATUS`; something the caller may not see is a 404 like a
missing id. The OpenAPI document (`_openapi.py`) is generated from `ROUTES`.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cronhive.auth import Identity
from cronhive.errors import InvalidInput
from cronhive.model import RunState, Stream
from cronhive.service import RunFilter
from cronhive.web._convert import (
    chunk_json,
    decode_cursor,
    decode_run_cursor,
    delivery_json,
    encode_cursor,
    event_json,
    job_json,
    node_json,
    run_json,
)
from cronhive.web._deps import Web, hidden, uuid_or_404
from cronhive.web._errors import status_of

__all__ = ["MAX_LIMIT", "ROUTES", "ApiRoute", "int_param", "routes", "streams_param"]

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
            caller = await request.app.state.sessions.caller(request)
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


async def _runs_page(request: Request, web: Web, who: Identity, job: Any = None) -> dict[str, Any]:
    limit = int_param(request, "limit", 50, 1, MAX_LIMIT)
    state = request.query_params.get("state")
    try:
        states = None if state is None else {RunState(state)}
    except ValueError:
        raise InvalidInput("state: not a run state", field="state") from None
    text = request.query_params.get("before")
    before = None if text is None else decode_run_cursor(text, "before")
    wanted = RunFilter(job_id=None if job is None else job.id, states=states)
    rows, last = await web.service.list_runs(who, wanted, before=before, limit=limit)
    nxt = None if last is None else encode_cursor([last.queued_at.isoformat(), str(last.id)])
    return {"runs": [run_json(v) for v in await web.service.views(rows)], "next": nxt}


async def list_jobs(request: Request, web: Web, who: Identity) -> Any:
    limit = int_param(request, "limit", 100, 1, MAX_LIMIT)
    after_text = request.query_params.get("after")
    after = None
    if after_text is not None:
        owner, name = decode_cursor(after_text, 2, "after")
        after = (owner, name)
    rows = await web.service.list_jobs(who, after=after, limit=limit + 1)
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
    return run_json(await web.service.view(run))


async def run_output(request: Request, web: Web, who: Identity) -> Any:
    run = await web.run(who, request.path_params["run_id"])
    streams = streams_param(request)
    after = int_param(request, "after_seq", -1, -1, 2**62)
    limit = int_param(request, "limit", 256, 1, MAX_LIMIT)
    chunks: list[dict[str, Any]] = []
    output = web.service.output(who, run.id, streams=streams, after_seq=after, closing=web.closing)
    async with aclosing(output) as reading:
        async for chunk in reading:
            chunks.append(chunk_json(chunk))
            if len(chunks) >= limit:
                break
    return {"state": str(run.state), "done": run.state.terminal, "chunks": chunks}


async def list_nodes(request: Request, web: Web, who: Identity) -> Any:
    now = web.service.clock.now()
    return {"nodes": [node_json(n, now) for n in await web.service.list_nodes(who)]}


async def list_events(request: Request, web: Web, who: Identity) -> Any:
    """The events after `after_id` (default 0), oldest first, at most `limit`."""
    after = int_param(request, "after_id", 0, 0, 2**62)
    limit = int_param(request, "limit", 100, 1, MAX_LIMIT)
    text = request.query_params.get("job_id")
    job_id = None if text is None else (await web.job(who, text)).id
    found: list[dict[str, Any]] = []
    events = web.service.events(
        who, job_id=job_id, after_id=after, follow=False, closing=web.closing
    )
    async with aclosing(events) as reading:
        async for event in reading:
            found.append(event_json(event))
            if len(found) >= limit:
                break
    nxt = found[-1]["id"] if len(found) >= limit else None
    return {"events": found, "next": nxt}


async def list_notifications(request: Request, web: Web, who: Identity) -> Any:
    limit = int_param(request, "limit", 100, 1, MAX_LIMIT)
    text = request.query_params.get("job_id")
    job_id = None if text is None else (await web.job(who, text)).id
    found = await web.service.list_notifications(who, job_id=job_id, limit=limit)
    return {"notifications": [delivery_json(d) for d in found]}


async def retry_notification(request: Request, web: Web, who: Identity) -> Any:
    with hidden("notification"):
        delivery_id = uuid_or_404(request.path_params["delivery_id"], "notification")
        return delivery_json(await web.service.retry_notification(who, delivery_id))


async def _body(request: Request, what: str) -> Any:
    body = await request.body()
    if not body.strip():
        return None
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput(f"body: not JSON ({what})", field="body") from None


async def trigger(request: Request, web: Web, who: Identity) -> Any:
    """A trigger's optional JSON body: `{"env": {"K": "V"}, "args": ["..."]}`."""
    job = await web.job(who, request.path_params["job_id"])
    doc = await _body(request, '{"env": {...}, "args": [...]}')
    doc = {} if doc is None else doc
    if not isinstance(doc, dict) or set(doc) - {"env", "args"}:
        raise InvalidInput('body: expected {"env": {...}, "args": [...]}', field="body")
    env, args = doc.get("env", {}), doc.get("args", [])
    if not isinstance(env, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in env.items()
    ):
        raise InvalidInput("env: expected an object of strings", field="env")
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise InvalidInput("args: expected a list of strings", field="args")
    with hidden("job"):
        run = await web.service.trigger(who, job.id, env, args)
    return run_json(await web.service.view(run))


async def set_notify(request: Request, web: Web, who: Identity) -> Any:
    """The job's notification triggers, replaced: `{"failure": ["ops"], ...}`."""
    job = await web.job(who, request.path_params["job_id"])
    doc = await _body(request, '{"failure": ["target", ...], ...}')
    if not isinstance(doc, dict) or not all(
        isinstance(v, list) and all(isinstance(t, str) for t in v) for v in doc.values()
    ):
        raise InvalidInput('body: expected {"failure": ["target", ...], ...}', field="body")
    with hidden("job"):
        changed = await web.service.set_job_notify(who, job.id, doc)
    return job_json(changed, await web.service.warning(changed))


async def pause(request: Request, web: Web, who: Identity) -> Any:
    job = await web.job(who, request.path_params["job_id"])
    with hidden("job"):
        return job_json(await web.service.set_enabled(who, job.id, False))


async def resume(request: Request, web: Web, who: Identity) -> Any:
    job = await web.job(who, request.path_params["job_id"])
    with hidden("job"):
        return job_json(await web.service.set_enabled(who, job.id, True))


async def stop(request: Request, web: Web, who: Identity) -> Any:
    run = await web.run(who, request.path_params["run_id"])
    with hidden("run"):
        return run_json(await web.service.view(await web.service.stop_run(who, run.id)))


@dataclass(frozen=True, kw_only=True)
class ApiRoute:
    """One route of the JSON API and what the OpenAPI document says of it: the shape
    it answers (a name of api.shapes.SHAPED, `list_of` it under that key, or an
    inline schema), its query parameters and its body."""

    method: str
    path: str
    handler: Handler
    summary: str
    answers: str | None = None
    list_of: str | None = None
    paged: bool = False  # the list carries "next", a cursor or null
    query: tuple[str, ...] = ()
    body: str | None = None  # "trigger" | "notify"


ROUTES: tuple[ApiRoute, ...] = (
    ApiRoute(method="GET", path="/jobs", handler=list_jobs, summary="Jobs the caller may see",
             list_of="Job", paged=True, query=("limit", "after")),
    ApiRoute(method="GET", path="/jobs/{job_id}", handler=get_job, summary="One job",
             answers="Job"),
    ApiRoute(method="GET", path="/jobs/{job_id}/runs", handler=job_runs,
             summary="The job's runs, newest first", list_of="Run", paged=True,
             query=("limit", "before", "state")),
    ApiRoute(method="POST", path="/jobs/{job_id}/trigger", handler=trigger,
             summary="Run the job now (optionally with env and args)", answers="Run",
             body="trigger"),
    ApiRoute(method="POST", path="/jobs/{job_id}/pause", handler=pause, summary="Pause",
             answers="Job"),
    ApiRoute(method="POST", path="/jobs/{job_id}/resume", handler=resume, summary="Resume",
             answers="Job"),
    ApiRoute(method="PUT", path="/jobs/{job_id}/notify", handler=set_notify,
             summary="Replace the job's notification triggers", answers="Job", body="notify"),
    ApiRoute(method="GET", path="/runs", handler=list_runs,
             summary="Runs the caller may see, newest first", list_of="Run", paged=True,
             query=("limit", "before", "state")),
    ApiRoute(method="GET", path="/runs/{run_id}", handler=get_run, summary="One run",
             answers="Run"),
    ApiRoute(method="GET", path="/runs/{run_id}/output", handler=run_output,
             summary="The run's output so far", answers="Output",
             query=("stream", "after_seq", "limit")),
    ApiRoute(method="POST", path="/runs/{run_id}/stop", handler=stop, summary="Stop the run",
             answers="Run"),
    ApiRoute(method="GET", path="/nodes", handler=list_nodes, summary="The cluster's nodes",
             list_of="Node"),
    ApiRoute(method="GET", path="/events", handler=list_events,
             summary="Events the caller may see, oldest first", list_of="Event",
             paged=True, query=("after_id", "limit", "job_id")),
    ApiRoute(method="GET", path="/notifications", handler=list_notifications,
             summary="Notifications (deliveries), newest first", list_of="Notification",
             query=("limit", "job_id")),
    ApiRoute(method="POST", path="/notifications/{delivery_id}/retry",
             handler=retry_notification, summary="Queue a failed notification again",
             answers="Notification"),
)  # fmt: skip

PREFIX = "/api/v1"


async def openapi(request: Request) -> Response:
    from cronhive.web._openapi import openapi_document

    return JSONResponse(openapi_document())


def routes() -> list[Route]:
    return [
        Route(f"{PREFIX}/openapi.json", openapi, methods=["GET"]),
        *(Route(PREFIX + r.path, endpoint(r.handler), methods=[r.method]) for r in ROUTES),
    ]
