"""The Starlette application: pages, the JSON API, static assets and security headers."""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cronhive.web import _jsonapi, _pages
from cronhive.web._auth import Sessions
from cronhive.web._deps import Web

__all__ = ["create_app"]

# Scripts and styles only from this origin (no inline script, no CDN); no framing.
_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        b"frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"strict-transport-security", b"max-age=31536000"),
]


class SecurityHeaders:
    """Adds `_HEADERS` to every HTTP response (pure ASGI: streaming stays streaming)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *_HEADERS]
            await send(message)

        await self.app(scope, receive, sending)


async def http_error(request: Request, exc: Exception) -> Response:
    """Unknown paths and methods: JSON under /api/, the error page elsewhere."""
    assert isinstance(exc, HTTPException)
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)
    return _pages.error_page(request, exc.status_code, str(exc.detail))


def create_app(web: Web) -> Starlette:
    """The web UI and JSON API over `web` (served by `WebService`, or any ASGI server)."""
    static = StaticFiles(directory=str(Path(__file__).parent / "static"))
    app = Starlette(
        routes=[*_pages.routes(), *_jsonapi.routes(), Mount("/static", static, name="static")],
        exception_handlers={HTTPException: http_error},
    )
    app.state.web = web
    app.state.sessions = Sessions(web.service)
    app.add_middleware(SecurityHeaders)
    return app
