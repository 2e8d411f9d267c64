"""The JSON API over real TLS: token auth, the 404 rule, CSRF on sessions, actions."""

from __future__ import annotations

import re
import ssl
import time
from typing import Any

import pytest
import requests
from webkit import WebNode


def _sign_in(node: WebNode, token: str) -> tuple[requests.Session, str]:
    """A browser-like session: the sign-in form, then the session's CSRF token."""
    s = node.http()
    form = s.get(node.url("/signin"))
    pre = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert pre is not None
    signed = s.post(node.url("/signin"), data={"csrf": pre.group(1), "token": token})
    assert signed.status_code == 200 and "Jobs" in signed.text
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', signed.text)
    assert csrf is not None
    return s, csrf.group(1)


def test_only_tls_1_3_is_offered(node: WebNode) -> None:
    ctx = ssl.create_default_context(cafile=str(node.certs.ca_cert))
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    with pytest.raises(requests.exceptions.SSLError):
        s = node.http()
        s.mount("https://", _Adapter(ctx))
        s.get(node.url("/api/v1/openapi.json"))
    assert node.http().get(node.url("/api/v1/openapi.json")).json()["openapi"] == "3.1.0"


class _Adapter(requests.adapters.HTTPAdapter):
    def __init__(self, ctx: ssl.SSLContext) -> None:
        self._ctx = ctx
        super().__init__()

    def init_poolmanager(self, *args: object, **kwargs: object) -> None:
        kwargs["ssl_context"] = self._ctx
        super().init_poolmanager(*args, **kwargs)  # type: ignore[arg-type]


def test_without_a_usable_token_the_api_answers_401(node: WebNode) -> None:
    expired = node.token("alice", days=-1)
    for headers in (
        {},
        {"Authorization": "Bearer nope"},
        {"Authorization": f"Bearer {expired}"},
        {"Authorization": "Basic YTpi"},
    ):
        r = node.http().get(node.url("/api/v1/jobs"), headers=headers)
        assert r.status_code == 401, headers
        assert r.headers["WWW-Authenticate"] == "Bearer"
    page = node.http().get(node.url("/jobs"), allow_redirects=False)
    assert page.status_code == 303 and page.headers["location"] == "/signin"


def test_a_user_sees_only_their_jobs_and_anything_else_is_404(node: WebNode) -> None:
    mine = node.job("user:dora", "dora-report", ["echo", "hi"], cron="0 3 * * *")
    theirs = node.job("user:eve", "eve-secret", ["true"])
    shared = node.job("group:ops", "ops-backup", ["true"])
    dora = node.http(node.token("dora", groups=["ops"]))
    names = {j["name"] for j in dora.get(node.url("/api/v1/jobs")).json()["jobs"]}
    assert names == {"dora-report", "ops-backup"}
    got = dora.get(node.url(f"/api/v1/jobs/{mine.id}")).json()
    assert got["schedule"]["description"] and got["owner"] == "user:dora"
    assert dora.get(node.url(f"/api/v1/jobs/{shared.id}")).status_code == 200
    hidden = dora.get(node.url(f"/api/v1/jobs/{theirs.id}"))
    missing = dora.get(node.url("/api/v1/jobs/00000000-0000-0000-0000-000000000000"))
    malformed = dora.get(node.url("/api/v1/jobs/not-a-uuid"))
    assert hidden.status_code == missing.status_code == malformed.status_code == 404
    assert hidden.json() == missing.json() == malformed.json()
    for action in ("trigger", "pause", "resume"):
        assert dora.post(node.url(f"/api/v1/jobs/{theirs.id}/{action}")).status_code == 404
    page = dora.get(node.url(f"/jobs/{theirs.id}"))
    assert page.status_code == 404 and "eve-secret" not in page.text


def test_trigger_pause_resume_and_the_run_with_its_output(node: WebNode) -> None:
    job = node.job(
        "user:fay", "fay-echo", ["sh", "-c", "echo out; echo err >&2"], cron="*/5 * * * *"
    )
    fay = node.http(node.token("fay"))
    paused = fay.post(node.url(f"/api/v1/jobs/{job.id}/pause")).json()
    assert paused["enabled"] is False and paused["next_fire_at"] is None
    resumed = fay.post(node.url(f"/api/v1/jobs/{job.id}/resume")).json()
    assert resumed["enabled"] is True and resumed["next_fire_at"]
    run = fay.post(node.url(f"/api/v1/jobs/{job.id}/trigger")).json()
    deadline = time.monotonic() + 20
    while fay.get(node.url(f"/api/v1/runs/{run['id']}")).json()["state"] in ("queued", "running"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    out = fay.get(node.url(f"/api/v1/runs/{run['id']}/output")).json()
    assert out["done"] and out["state"] == "succeeded"
    assert {(c["stream"], c["text"]) for c in out["chunks"]} == {
        ("stdout", "out\n"),
        ("stderr", "err\n"),
    }
    only_err = fay.get(node.url(f"/api/v1/runs/{run['id']}/output?stream=stderr")).json()
    assert [c["text"] for c in only_err["chunks"]] == ["err\n"]
    runs = fay.get(node.url(f"/api/v1/jobs/{job.id}/runs")).json()["runs"]
    assert [r["id"] for r in runs] == [run["id"]]
    other = node.http(node.token("gus"))
    assert other.get(node.url(f"/api/v1/runs/{run['id']}")).status_code == 404
    assert other.get(node.url(f"/api/v1/runs/{run['id']}/output")).status_code == 404
    assert other.post(node.url(f"/api/v1/runs/{run['id']}/stop")).status_code == 404
    assert other.get(node.url("/api/v1/runs")).json()["runs"] == []


def test_session_writes_need_the_csrf_token(node: WebNode) -> None:
    job = node.job("user:hal", "hal-job", ["true"])
    s, csrf = _sign_in(node, node.token("hal"))
    assert s.get(node.url("/api/v1/jobs")).status_code == 200  # reads need no CSRF token
    assert s.post(node.url(f"/api/v1/jobs/{job.id}/pause")).status_code == 403
    bad = s.post(node.url(f"/api/v1/jobs/{job.id}/pause"), headers={"X-CSRF-Token": "x" * 43})
    assert bad.status_code == 403
    form = s.post(node.url(f"/jobs/{job.id}/pause"), data={"csrf": "wrong"})
    assert form.status_code == 403
    assert s.get(node.url(f"/api/v1/jobs/{job.id}")).json()["enabled"] is True
    ok = s.post(node.url(f"/api/v1/jobs/{job.id}/pause"), headers={"X-CSRF-Token": csrf})
    assert ok.status_code == 200 and ok.json()["enabled"] is False
    page = s.post(node.url(f"/jobs/{job.id}/resume"), data={"csrf": csrf})
    assert page.status_code == 200 and "Run now" in page.text  # redirected to the job page
    cookie = next(c for c in s.cookies if c.name == "cronhive_session")
    assert cookie.secure and cookie.has_nonstandard_attr("HttpOnly")
    out = s.post(node.url("/signout"), data={"csrf": csrf}, allow_redirects=False)
    assert out.status_code == 303
    assert s.get(node.url("/api/v1/jobs")).status_code == 401


def test_sign_in_refuses_a_bad_token_and_a_forged_form(node: WebNode) -> None:
    s = node.http()
    form = s.get(node.url("/signin"))
    set_cookie = form.headers["set-cookie"].lower()
    assert "httponly" in set_cookie and "secure" in set_cookie and "samesite=strict" in set_cookie
    pre = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert pre is not None
    bad = s.post(node.url("/signin"), data={"csrf": pre.group(1), "token": "chv_nope"})
    assert bad.status_code == 401 and "Unknown, expired or revoked" in bad.text
    forged = node.http().post(node.url("/signin"), data={"csrf": "x", "token": node.token("ivy")})
    assert forged.status_code == 403
    assert "cronhive_session" not in forged.cookies


def test_pages_carry_security_headers(node: WebNode) -> None:
    r = node.http().get(node.url("/signin"))
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert node.http().get(node.url("/static/app.js")).status_code == 200


def test_unknown_api_paths_and_methods_answer_json(node: WebNode) -> None:
    http = node.http(node.token("jon"))
    missing = http.get(node.url("/api/v1/nope"))
    assert missing.status_code == 404 and missing.json() == {"error": "Not Found"}
    wrong = http.delete(node.url("/api/v1/jobs"))
    assert wrong.status_code == 405 and "error" in wrong.json()
    page = http.get(node.url("/nope"))
    assert page.status_code == 404 and "<h1>Not found</h1>" in page.text


def test_trigger_with_parameters(node: WebNode) -> None:
    job = node.job("user:pia", "pia-params", ["sh", "-c", 'echo "$WHO" "$@"', "x"])
    pia = node.http(node.token("pia"))
    url = node.url(f"/api/v1/jobs/{job.id}/trigger")
    run = pia.post(url, json={"env": {"WHO": "me"}, "args": ["a", "b c"]}).json()
    assert run["env"] == {"WHO": "me"}
    assert run["command"] == ["sh", "-c", 'echo "$WHO" "$@"', "x", "a", "b c"]
    deadline = time.monotonic() + 20
    while pia.get(node.url(f"/api/v1/runs/{run['id']}")).json()["state"] in ("queued", "running"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    out = pia.get(node.url(f"/api/v1/runs/{run['id']}/output")).json()
    assert [c["text"] for c in out["chunks"]] == ["me a b c\n"]
    bodies: list[tuple[Any, str]] = [
        ({"env": {"1X": "y"}}, "bad variable name"),
        ({"args": "not a list"}, "args: expected a list of strings"),
        ({"other": 1}, "body: expected"),
        ([], "body: expected"),
    ]
    for body, said in bodies:
        refused = pia.post(url, json=body)
        assert refused.status_code == 400, body
        assert said in refused.json()["error"]
    assert (
        pia.post(url, data=b"{not json", headers={"Content-Type": "application/json"}).status_code
        == 400
    )
