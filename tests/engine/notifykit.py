"""Real receivers for notification tests: an HTTP server and an SMTP server on free ports."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller

SECRET = "a-test-secret-of-some-length"


def signature_ok(secret: str, body: bytes, header: str) -> bool:
    """The receiver side as docs/notifications.md shows it, written independently of
    cronhive's own code: HMAC-SHA256 over `t + "." + body`, constant-time compare."""
    parts = dict(p.split("=", 1) for p in header.split(","))
    signed = parts["t"].encode() + b"." + body
    expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts["v1"]) and abs(time.time() - int(parts["t"])) < 300


@dataclass
class Hit:
    headers: dict[str, str]
    body: bytes
    status: int

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """Answers POSTs with `statuses` in turn (then 200) and records every request. With
    `hold_first`, the first request waits for `release` and is never answered (its
    sender is killed meanwhile); it is recorded with status 0."""

    url: str = ""
    statuses: list[int] = field(default_factory=list)
    hits: list[Hit] = field(default_factory=list)
    arrived: int = 0  # requests received, answered or not
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def delivered(self) -> list[Hit]:
        with self.lock:
            return [h for h in self.hits if h.status == 200]


@contextmanager
def http_receiver(
    statuses: list[int] | None = None, *, hold_first: bool = False
) -> Iterator[Receiver]:
    receiver = Receiver(statuses=list(statuses or []))
    if not hold_first:
        receiver.release.set()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            with receiver.lock:
                receiver.arrived += 1
                first = receiver.arrived == 1
                status = receiver.statuses.pop(0) if receiver.statuses else 200
            if first and not receiver.release.is_set():
                receiver.release.wait(60)  # the sender is killed meanwhile
                status = 0  # nobody hears this answer
            with receiver.lock:
                receiver.hits.append(Hit(dict(self.headers.items()), body, status))
            if status:
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.release.set()
        server.shutdown()
        server.server_close()


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


@contextmanager
def smtp_server() -> Iterator[tuple[int, list[Message]]]:
    """aiosmtpd on a free port; yields (port, messages received)."""
    inbox = _Inbox()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, inbox.messages
    finally:
        controller.stop()
