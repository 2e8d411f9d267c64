"""web: the browser UI and JSON API every node serves over HTTPS (TLS 1.3, our CA).

    WebService(host=, port=, certs=, policy=)   a NodeConfig.extra service; bound_port()
    create_app(web) -> Starlette                the ASGI app, over a `Web`
    Web(service=)                               the node's operations (cronhive.service)

Sign-in is by personal access token (``cronhive token create``); see docs/web.md.
"""

from __future__ import annotations

from cronhive.web._app import create_app
from cronhive.web._deps import Web
from cronhive.web._server import WebService, web_ssl_context

__all__ = ["Web", "WebService", "create_app", "web_ssl_context"]
