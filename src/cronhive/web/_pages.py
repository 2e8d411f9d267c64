"""The server-rendered pages: sign-in, jobs, job, run (with its live tail), nodes.

Every page goes through `page()`: not signed in -> the sign-in page; anything the caller
may not see (or that does not exist, or a malformed id) -> the same 404 page.
"""

from __future__ import annotations

import json
import re
import secrets
import shlex
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from cronhive.errors import InvalidInput, NotFound
from cronhive.model import RunState, command_line
from cronhive.notify import EVENTS
from cronhive.schedule import parse_duration
from cronhive.service import RunFilter
from cronhive.web._auth import COOKIE, PRE_COOKIE, Caller, CsrfFailed
from cronhive.web._convert import decode_run_cursor, encode_cursor
from cronhive.web._deps import Web, hidden, uuid_or_404
from cronhive.web._errors import status_of
from cronhive.web._jsonapi import MAX_LIMIT, int_param, streams_param
from cronhive.web._views import age, duration, duration_of, runs_chart

if TYPE_CHECKING:
    from starlette.templating import Jinja2Templates

__all__ = ["routes", "templates"]


@cache
def templates() -> Jinja2Templates:
    """The page templates, loaded with the first page: a node nobody browses never
    imports jinja2 (~2 MB of its memory)."""
    from starlette.templating import Jinja2Templates

    loaded = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
    loaded.env.filters["duration"] = duration
    loaded.env.globals["age"] = age
    loaded.env.globals["duration_of"] = duration_of
    loaded.env.globals["command_line"] = command_line
    return loaded


PageHandler = Callable[[Request, Web, Caller], Awaitable[Response]]
RUNS_PER_PAGE = 25


def _cookie(response: Response, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name, value, max_age=max_age, path="/", secure=True, httponly=True, samesite="strict"
    )


def error_page(request: Request, status: int, message: str) -> Response:
    titles = {400: "Bad request", 403: "Forbidden", 404: "Not found", 409: "Conflict"}
    return templates().TemplateResponse(
        request,
        "error.html",
        {"title": titles.get(status, "Unavailable"), "message": message, "caller": None},
        status_code=status,
    )


def page(handler: PageHandler) -> Callable[[Request], Awaitable[Response]]:
    """Authenticates (sign-in page if not), runs `handler`, renders our errors."""

    async def run(request: Request) -> Response:
        web: Web = request.app.state.web
        try:
            caller = await request.app.state.sessions.caller(request)
            return await handler(request, web, caller)
        except Exception as exc:
            status = status_of(exc)
            if status == 401:
                return RedirectResponse("/signin", status_code=303)
            if status is None or status == 500:
                raise
            # One message for missing and hidden alike: nothing to probe.
            message = "There is nothing here, or nothing you may see." if status == 404 else ""
            return error_page(request, status, message or str(exc))

    return run


def render(request: Request, caller: Caller, name: str, **context: Any) -> Response:
    web: Web = request.app.state.web
    return templates().TemplateResponse(
        request,
        name,
        {"caller": caller, "now": web.service.clock.now(), **context},
    )


# --- sign-in ---------------------------------------------------------------------------


async def signin_form(request: Request) -> Response:
    pre = secrets.token_urlsafe(32)
    response = templates().TemplateResponse(
        request, "signin.html", {"caller": None, "csrf": pre, "error": None}
    )
    _cookie(response, PRE_COOKIE, pre, 600)
    return response


async def signin(request: Request) -> Response:
    web: Web = request.app.state.web
    form = await request.form()
    pre = request.cookies.get(PRE_COOKIE, "")
    given = form.get("csrf", "")
    if not pre or not isinstance(given, str) or not secrets.compare_digest(pre, given):
        return error_page(request, 403, "The sign-in form expired; open it again.")
    token = form.get("token", "")
    try:
        session = await request.app.state.sessions.sign_in(token if isinstance(token, str) else "")
    except NotFound:
        fresh = secrets.token_urlsafe(32)
        response = templates().TemplateResponse(
            request,
            "signin.html",
            {"caller": None, "csrf": fresh, "error": "Unknown, expired or revoked token."},
            status_code=401,
        )
        _cookie(response, PRE_COOKIE, fresh, 600)
        return response
    done = RedirectResponse("/jobs", status_code=303)
    ttl = int((session.expires_at - web.service.clock.now()).total_seconds())
    _cookie(done, COOKIE, session.id, max(1, ttl))
    done.delete_cookie(PRE_COOKIE, path="/")
    return done


async def signout(request: Request, web: Web, caller: Caller) -> Response:
    if caller.session is None:
        raise CsrfFailed("sign out is for browser sessions")
    await request.app.state.sessions.sign_out(caller.session.id)
    response = RedirectResponse("/signin", status_code=303)
    response.delete_cookie(COOKIE, path="/", secure=True, httponly=True, samesite="strict")
    return response


# --- pages -----------------------------------------------------------------------------


async def home(request: Request) -> Response:
    return RedirectResponse("/jobs", status_code=303)


async def jobs_page(request: Request, web: Web, caller: Caller) -> Response:
    jobs = await web.service.list_jobs(caller.identity, limit=MAX_LIMIT)
    return render(request, caller, "jobs.html", jobs=jobs)


async def job_page(request: Request, web: Web, caller: Caller) -> Response:
    who = caller.identity
    job = await web.job(who, request.path_params["job_id"])
    before = None
    cursor = request.query_params.get("before")
    if cursor is not None:
        before = decode_run_cursor(cursor, "before")
    mine = RunFilter(job_id=job.id)
    page_runs, last = await web.service.list_runs(who, mine, before=before, limit=RUNS_PER_PAGE)
    nxt = None
    if last is not None:
        nxt = encode_cursor([last.queued_at.isoformat(), str(last.id)])
    recent = page_runs
    if before is None:
        recent = (await web.service.list_runs(who, mine, limit=60))[0]
    chart = runs_chart(recent, web.service.clock.now())
    notes = await web.service.list_notifications(who, job_id=job.id, limit=20)
    return render(
        request,
        caller,
        "job.html",
        job=job,
        runs=page_runs,
        next_cursor=nxt,
        chart=chart,
        notifications=notes,
        events=EVENTS,
        targets=web.service.targets.names(),
    )


async def job_script(request: Request, web: Web, caller: Caller) -> Response:
    job = await web.job(caller.identity, request.path_params["job_id"])
    with hidden("script"):
        body = await web.service.job_script(caller.identity, job)
    # Shown, never run or rendered by the browser: plain text, no sniffing.
    return Response(
        body,
        media_type="text/plain; charset=utf-8",
        headers={"X-Content-Type-Options": "nosniff", "Content-Disposition": "inline"},
    )


async def notifications_page(request: Request, web: Web, caller: Caller) -> Response:
    notes = await web.service.list_notifications(caller.identity)
    return render(request, caller, "notifications.html", notifications=notes)


async def retry_notification(request: Request, web: Web, caller: Caller) -> Response:
    with hidden("notification"):
        delivery_id = uuid_or_404(request.path_params["delivery_id"], "notification")
        await web.service.retry_notification(caller.identity, delivery_id)
    return RedirectResponse("/notifications", status_code=303)


async def job_action(request: Request, web: Web, caller: Caller) -> Response:
    job = await web.job(caller.identity, request.path_params["job_id"])
    action = request.path_params["action"]
    if action == "trigger":
        env, args = await _form_parameters(request)
        with hidden("job"):
            run = await web.service.trigger(caller.identity, job.id, env, args)
        return RedirectResponse(f"/runs/{run.id}", status_code=303)
    with hidden("job"):
        if action in ("pause", "resume"):
            await web.service.set_enabled(caller.identity, job.id, action == "resume")
        elif action == "notify":
            rules = await _form_notify(request)
            await web.service.set_job_notify(caller.identity, job.id, rules)
        else:
            raise NotFound("no such action")
    return RedirectResponse(f"/jobs/{job.id}", status_code=303)


async def _form_notify(request: Request) -> dict[str, list[str]]:
    """*Notifications*: one field per event (`on_failure`, ...), targets by commas."""
    form = await request.form()
    rules: dict[str, list[str]] = {}
    for event in EVENTS:
        text = form.get(f"on_{event}", "")
        names = [t.strip() for t in (text if isinstance(text, str) else "").split(",")]
        if any(names):
            rules[event] = [n for n in names if n]
    return rules


async def _form_parameters(request: Request) -> tuple[dict[str, str], list[str]]:
    """*Run with parameters*: `env` as NAME=value lines, `args` as shell words."""
    form = await request.form()
    env_text, args_text = form.get("env", ""), form.get("args", "")
    env: dict[str, str] = {}
    for line in (env_text if isinstance(env_text, str) else "").splitlines():
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise InvalidInput(f"env: expected NAME=value, got {line[:40]!r}", field="env")
        env[key.strip()] = value
    try:
        args = shlex.split(args_text if isinstance(args_text, str) else "")
    except ValueError as exc:
        raise InvalidInput(f"args: {exc}", field="args") from None
    return env, args


async def run_page(request: Request, web: Web, caller: Caller) -> Response:
    run = await web.run(caller.identity, request.path_params["run_id"])
    view = await web.service.view(run)
    return render(request, caller, "run.html", run=run, node=view.node_name, waiting=view.waiting)


async def stop_run(request: Request, web: Web, caller: Caller) -> Response:
    run = await web.run(caller.identity, request.path_params["run_id"])
    with hidden("run"):
        await web.service.stop_run(caller.identity, run.id)
    return RedirectResponse(f"/runs/{run.id}", status_code=303)


MAX_SEQ = 2**62
_SEQ = re.compile(r"-?[0-9]{1,19}")


async def tail(request: Request, web: Web, caller: Caller) -> Response:
    """Server-sent events: `chunk` (id = seq, so a reconnect resumes) until `end`."""
    run = await web.run(caller.identity, request.path_params["run_id"])
    streams = streams_param(request)
    last = request.headers.get("last-event-id")
    if last is not None:  # what a reconnecting browser sends back: an id we sent
        if not _SEQ.fullmatch(last) or not -1 <= int(last) <= MAX_SEQ:
            raise InvalidInput(
                f"Last-Event-ID: expected a chunk number -1..{MAX_SEQ}", field="Last-Event-ID"
            )
        after = int(last)
    else:
        after = int_param(request, "after_seq", -1, -1, MAX_SEQ)

    async def events() -> AsyncIterator[str]:
        chunks = web.service.output(
            caller.identity,
            run.id,
            streams=streams,
            after_seq=after,
            follow=True,
            closing=web.closing,
        )
        async with aclosing(chunks) as output:
            async for chunk in output:
                data = {"stream": str(chunk.stream), "text": chunk.data.decode("utf-8", "replace")}
                yield f"id: {chunk.seq}\nevent: chunk\ndata: {json.dumps(data)}\n\n"
        final = await web.run(caller.identity, str(run.id))
        if final.state.terminal:
            body = {"state": str(final.state), "exit_code": final.exit_code}
            yield f"event: end\ndata: {json.dumps(body)}\n\n"

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def runs_page(request: Request, web: Web, caller: Caller) -> Response:
    """Every run the caller may see, newest first, with the filters of `cronhive runs`."""
    q = request.query_params
    state = q.get("state") or ""
    states = None
    if state:
        try:
            states = frozenset({RunState(state)})
        except ValueError:
            raise InvalidInput(f"state: no such state {state!r}", field="state") from None
    job_id = None
    if q.get("job"):
        job_id = (await web.job(caller.identity, q["job"])).id
    since_text = q.get("since") or ""
    since = None
    if since_text:
        since = web.service.clock.now() - parse_duration(since_text)
    owner = q.get("owner") or None
    before = decode_run_cursor(q["before"], "before") if q.get("before") else None
    wanted = RunFilter(job_id=job_id, states=states, since=since)
    rows, last = await web.service.list_runs(
        caller.identity,
        wanted,
        owner=owner,
        node=q.get("node") or None,
        before=before,
        limit=RUNS_PER_PAGE,
    )
    keep = {k: v for k, v in q.items() if k != "before" and v}
    older = None
    if last is not None:
        cursor = encode_cursor([last.queued_at.isoformat(), str(last.id)])
        older = "/runs?" + urlencode({**keep, "before": cursor})
    return render(
        request,
        caller,
        "runs.html",
        runs=rows,
        older=older,
        jobs=await web.service.list_jobs(caller.identity, limit=MAX_LIMIT),
        names=await web.service.node_names(),
        states=[s.value for s in RunState],
        chosen=keep,
    )


async def nodes_page(request: Request, web: Web, caller: Caller) -> Response:
    nodes = await web.service.list_nodes(caller.identity)
    return render(request, caller, "nodes.html", nodes=nodes)


def routes() -> list[Route]:
    return [
        Route("/", home, methods=["GET"]),
        Route("/signin", signin_form, methods=["GET"]),
        Route("/signin", signin, methods=["POST"]),
        Route("/signout", page(signout), methods=["POST"]),
        Route("/jobs", page(jobs_page), methods=["GET"]),
        Route("/jobs/{job_id}", page(job_page), methods=["GET"]),
        Route("/jobs/{job_id}/script", page(job_script), methods=["GET"]),
        Route("/jobs/{job_id}/{action}", page(job_action), methods=["POST"]),
        Route("/runs", page(runs_page), methods=["GET"]),
        Route("/runs/{run_id}", page(run_page), methods=["GET"]),
        Route("/notifications", page(notifications_page), methods=["GET"]),
        Route("/notifications/{delivery_id}/retry", page(retry_notification), methods=["POST"]),
        Route("/runs/{run_id}/stop", page(stop_run), methods=["POST"]),
        Route("/runs/{run_id}/tail", page(tail), methods=["GET"]),
        Route("/nodes", page(nodes_page), methods=["GET"]),
    ]
