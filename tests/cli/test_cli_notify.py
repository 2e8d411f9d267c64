"""Reactions from the terminal, against a real node whose configuration names targets:
--notify on add/edit/apply, refusals, `notifications` and a retry by hand."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from clikit import Cli, running_node


class Hook:
    """A real HTTP receiver answering `statuses` in turn, then 200."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.events: list[str] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hook.events.append(json.loads(body)["event"])
                self.send_response(hook.statuses.pop(0) if hook.statuses else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def hook() -> Iterator[Hook]:
    h = Hook([])
    yield h
    h.server.shutdown()
    h.server.server_close()


@pytest.fixture(scope="module")
def ncli(tmp_path_factory: pytest.TempPathFactory, hook: Hook) -> Iterator[Cli]:
    home = tmp_path_factory.mktemp("notify")
    config = home / "node.toml"
    config.write_text(
        f'[notify.ops]\nwebhook = "{hook.url}"\nsecret = "0123456789abcdef0123"\n\n'
        '[notify.then-a]\njob = "user:admin/a"\n'
    )
    with running_node(home / "data", extra=("--config", str(config))) as c:
        yield c


def _wait(check: Any, within: float = 30) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "condition not met"
        time.sleep(0.1)


def _notes(cli: Cli, *args: str) -> list[dict[str, Any]]:
    value = json.loads(cli.ok("notifications", "--json", *args))
    assert isinstance(value, list)
    return value


def test_notify_flags_are_stored_shown_checked_and_cleared(ncli: Cli) -> None:
    ncli.ok("add", "flaky", "--notify", "failure=ops", "--notify", "recovery=ops", "--", "false")
    job = json.loads(ncli.ok("show", "--json", "flaky"))
    assert job["notify"] == {"failure": ["ops"], "recovery": ["ops"]}
    assert "failure=ops  recovery=ops" in ncli.ok("show", "flaky")
    bad = ncli("add", "nope", "--notify", "failure=pager", "--", "true")
    assert bad.returncode == 2 and "unknown target 'pager'" in bad.stderr
    assert "ops, then-a" in bad.stderr  # the targets there are
    odd = ncli("add", "odd", "--notify", "sometimes=ops", "--", "true")
    assert odd.returncode == 2 and "unknown event 'sometimes'" in odd.stderr
    loop = ncli("add", "a", "--notify", "success=then-a", "--", "true")
    assert loop.returncode == 2 and "chain cycle user:admin/a -> user:admin/a" in loop.stderr
    ncli.ok("edit", "flaky", "--notify", "none")
    assert json.loads(ncli.ok("show", "--json", "flaky"))["notify"] == {}
    ncli.ok("rm", "flaky")


def test_apply_sets_notify_and_a_refused_delivery_is_retried_by_hand(
    ncli: Cli, hook: Hook, tmp_path: Path
) -> None:
    hook.statuses[:] = [400]  # the first delivery is refused for good: retried by hand
    before = len(hook.events)
    path = tmp_path / "jobs.toml"
    path.write_text('[jobs.report]\ncommand = ["false"]\nnotify = { failure = ["ops"] }\n')
    ncli.ok("apply", "-f", str(path))
    assert json.loads(ncli.ok("show", "--json", "report"))["notify"] == {"failure": ["ops"]}
    ncli.ok("trigger", "report")
    _wait(lambda: [n["state"] for n in _notes(ncli, "report")] == ["failed"])
    [failed] = _notes(ncli, "report")
    assert failed["last_error"] == "HTTP 400 from target ops" and failed["attempts"] == 1
    assert hook.url not in json.dumps(failed)  # a webhook URL may be a secret itself
    assert failed["payload"]["run"]["state"] == "failed"
    assert "failed" in ncli.ok("notifications", "report")
    out = ncli.ok("notifications", "retry", failed["id"])
    assert f"notification {failed['id']} (failure to ops) queued again" in out
    _wait(lambda: [n["state"] for n in _notes(ncli, "report")] == ["delivered"])
    assert hook.events[before:] == ["failure", "failure"]  # refused once, then delivered
    again = ncli("notifications", "retry", failed["id"])
    assert again.returncode == 1 and "not failed" in again.stderr


def test_owner_defaults_notify_jobs_without_rules_of_their_own(ncli: Cli, hook: Hook) -> None:
    assert ncli.ok("notifications", "defaults").strip() == "defaults of user:admin: none"
    chain = ncli("notifications", "defaults", "--notify", "success=then-a")
    assert chain.returncode == 2 and "a default cannot" in chain.stderr
    unknown = ncli("notifications", "defaults", "--notify", "failure=pager")
    assert unknown.returncode == 2 and "unknown target 'pager'" in unknown.stderr
    out = ncli.ok("notifications", "defaults", "--notify", "failure=ops")
    assert out.strip() == "defaults of user:admin: failure=ops"
    ncli.ok("add", "quiet", "--", "false")  # no --notify: the default applies
    assert json.loads(ncli.ok("show", "--json", "quiet"))["notify"] == {}
    before = len(hook.events)
    ncli.ok("trigger", "quiet")
    _wait(lambda: [n["state"] for n in _notes(ncli, "quiet")] == ["delivered"])
    assert hook.events[before:] == ["failure"]
    as_json = json.loads(ncli.ok("notifications", "defaults", "--json"))
    assert as_json == {"owner": "user:admin", "notify": {"failure": ["ops"]}}
    ncli.ok("notifications", "defaults", "--notify", "none")
    assert "none" in ncli.ok("notifications", "defaults")
    stray = ncli("notifications", "quiet", "--notify", "failure=ops")
    assert stray.returncode == 2 and "go with" in stray.stderr
