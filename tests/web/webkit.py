"""A real node serving the web UI on 127.0.0.1:0 over TLS 1.3, in a thread of its own;
and the browser the browser tests drive (Debian's Chromium, through Playwright).

The node runs its own event loop, so tests stay synchronous (requests, schemathesis and
Playwright's sync API all block); `WebNode.call` runs a coroutine on the node's loop to
set up rows through its store.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Coroutine, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
import requests
from playwright.sync_api import Browser, Page, expect, sync_playwright

from cronhive.api.server import ApiService
from cronhive.auth import DEFAULT_POLICY, CertPaths, Policy
from cronhive.auth.certs import init_certs
from cronhive.engine.node import NodeConfig, NodeProcess
from cronhive.model import Job, JobSpec, RunSpec
from cronhive.notify import Targets
from cronhive.schedule import parse_schedule
from cronhive.store import Store, Token, open_store
from cronhive.store.tokens import new_token
from cronhive.web import WebService

T = TypeVar("T")


class WebNode:
    """One node (SQLite, runs commands) with the web UI and the gRPC API."""

    def __init__(
        self,
        tmp: Path,
        *,
        policy: Policy = DEFAULT_POLICY,
        db: str | None = None,
        name: str = "web1",
        port: int = 0,
        targets: Targets | None = None,
    ) -> None:
        """`db`: a PostgreSQL URL shared with other nodes (default: SQLite in `tmp`);
        `port`: the web port (0: any; a restarted node passes its old one)."""
        self.tmp = tmp
        self.policy = policy
        self.db = db or f"sqlite:///{tmp / 'cronhive.db'}"
        self.name = name
        self.targets = targets  # what jobs may name in `notify` (none delivered here)
        certs = tmp / "certs"
        self.certs: CertPaths = (
            CertPaths(dir=certs)
            if (certs / "server.crt").exists()
            else init_certs(certs, dns_names=["localhost"], ip_addresses=["127.0.0.1"], days=30)
        )
        self.port = port
        self.api_port = 0
        self.store: Store
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._failed: BaseException | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="web-node", daemon=True)

    def start(self) -> WebNode:
        self._thread.start()
        if not self._ready.wait(30) or self._failed is not None:
            raise RuntimeError(f"the node did not start: {self._failed!r}")
        return self

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:
            self._failed = exc
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self.store = await open_store(self.db)
        service = WebService(
            host="127.0.0.1",
            port=self.port,
            certs=self.certs,
            policy=self.policy,
            poll=0.2,
            targets=self.targets,
        )
        api = ApiService(
            host="127.0.0.1", port=0, certs=self.certs, policy=self.policy, targets=self.targets
        )
        node = NodeProcess(
            self.store,
            NodeConfig(
                name=self.name, spool_dir=self.tmp / "spool", grace=1.0, extra=(service, api)
            ),
        )
        task = asyncio.create_task(node.run())
        try:
            self.port = await asyncio.wait_for(service.bound_port(), 20)
            self.api_port = await asyncio.wait_for(api.bound_port(), 20)
            self._ready.set()
            await self._stop.wait()
        finally:
            node.shutdown()
            await asyncio.wait_for(task, 30)
            await self.store.close()

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(40)

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(30)

    # --- set-up ------------------------------------------------------------------------

    def url(self, path: str = "/") -> str:
        return f"https://127.0.0.1:{self.port}{path}"

    def token(self, user: str, *, groups: Iterable[str] = (), days: float | None = None) -> str:
        token_id, text, digest = new_token()
        now = datetime.now(UTC)
        self.call(
            self.store.create_token(
                Token(
                    id=token_id,
                    user=user,
                    groups=frozenset(groups),
                    name=f"t-{token_id.hex[:8]}",
                    digest=digest,
                    created_at=now,
                    expires_at=None if days is None else now + timedelta(days=days),
                )
            )
        )
        return text

    def job(
        self,
        owner: str,
        name: str,
        command: list[str],
        *,
        cron: str | None = None,
        tags: frozenset[str] = frozenset(),
    ) -> Job:
        schedule = None if cron is None else parse_schedule("cron", cron, timezone="Europe/Berlin")
        run = RunSpec(command=tuple(command), target_tags=tags)
        spec = JobSpec(name=name, owner=owner, run=run, schedule=schedule)
        now = datetime.now(UTC)
        nxt = None if schedule is None else schedule.next_after(now)
        return self.call(self.store.create_job(spec, next_fire_at=nxt, created_by=owner, now=now))

    def http(self, token: str | None = None) -> requests.Session:
        """A requests session trusting only our CA; with `token`, sent as a Bearer."""
        s = requests.Session()
        s.trust_env = False  # a CA bundle in the environment would override `verify`
        s.verify = str(self.certs.ca_cert)
        if token is not None:
            s.headers["Authorization"] = f"Bearer {token}"
        return s


# --- the browser ---------------------------------------------------------------------------

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
_CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def require_chromium() -> None:
    """Skips the calling test module where Chromium is missing; fails it under CI (where
    scripts/test installs it)."""
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} missing: apt-get install -y chromium (scripts/test does it)"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message, allow_module_level=True)


@contextmanager
def chromium() -> Iterator[Browser]:
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=_CHROMIUM_ARGS
        )
        yield browser
        browser.close()


def new_page(browser: Browser) -> Page:
    """A page of a fresh context (no cookies), waiting up to 15 s for what it expects."""
    # The dev CA is not in Chromium's store; the test's own TLS checks are in test_json_api.
    context = browser.new_context(ignore_https_errors=True, viewport={"width": 1200, "height": 800})
    context.set_default_timeout(15_000)
    return context.new_page()


def sign_in(page: Page, node: WebNode, token: str) -> None:
    """Submits the sign-in form `page` shows, which lands on the jobs page."""
    page.fill("#token", token)
    page.click("button:has-text('Sign in')")
    expect(page).to_have_url(node.url("/jobs"))
