"""Stored scripts across a cluster: two nodes on PostgreSQL sharing an S3 blob store (a
real moto server process); scripts added through node 1 run on node 2."""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
import requests
from blobkit import PYTHON, Cli, clean_env, running_node, s3_flags
from grpclib.const import Status
from grpclib.exceptions import GRPCError
from s3kit import MotoServer

from cronhive.api._generated.cronhive.v1 import cronhive_pb2 as pb
from cronhive.api.client import connect

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(600)]

PY = b"""#!/usr/bin/env python3
import sys
print("python says", " ".join(sys.argv[1:]), sys.version_info[0])
"""
RB = b"""puts "ruby says #{ARGV.join(' ')} #{1 + 1}"
"""


def _last_run(cli: object, job: str) -> dict[str, object]:
    runs = json.loads(cli.ok("history", job, "--json"))  # type: ignore[attr-defined]
    return dict(runs[0])


def test_scripts_added_on_node_1_run_on_node_2(
    pg_database: Callable[[str | None], str], moto: MotoServer, tmp_path: Path
) -> None:
    url = pg_database(None)
    flags = s3_flags(moto, f"c-{uuid.uuid4().hex[:8]}")
    work = tmp_path / "work"
    work.mkdir()
    (work / "hello.py").write_bytes(PY)
    (work / "hello.rb").write_bytes(RB)
    home = tmp_path
    # Node 1 takes API calls and runs nothing; node 2 runs everything and never sees
    # the files (it fetches them from S3 by digest).
    with (
        running_node(
            tmp_path / "n1",
            db=url,
            home=home,
            web=True,
            extra=[*flags, "--capacity", "0", "--name", "n1"],
        ) as one,
        running_node(
            tmp_path / "n2", db=url, home=home, certs=one.certs, extra=[*flags, "--name", "n2"]
        ),
    ):
        one.ok("add", "py", "--script", str(work / "hello.py"), "--", "from", "py")
        one.ok("add", "rb", "--script", str(work / "hello.rb"), "--interpreter", "ruby")
        done = one("trigger", "-f", "py", timeout=90)
        assert (done.returncode, done.stdout) == (0, "python says from py 3\n"), done.stderr
        done = one("trigger", "-f", "rb", timeout=90)
        assert (done.returncode, done.stdout) == (0, "ruby says  2\n"), done.stderr

        for job, body, interpreter in (("py", PY, ["python3"]), ("rb", RB, ["ruby"])):
            run = _last_run(one, job)
            assert run["node_name"] == "n2"
            script = run["script"]
            assert isinstance(script, dict)
            assert script["digest"] == hashlib.sha256(body).hexdigest()
            assert script["interpreter"] == interpreter
            assert one.raw("show", job, "--script") == body
        cached = tmp_path / "n2" / "scripts" / hashlib.sha256(PY).hexdigest()
        assert cached.read_bytes() == PY
        assert not (tmp_path / "n1" / "scripts").exists()
        stored = [k for k in moto.object_keys() if "/scripts/sha256/" in k]
        assert len(stored) == 2

        # A new body is a new version; the old run keeps the digest it ran.
        first = _last_run(one, "py")["script"]
        (work / "hello.py").write_bytes(PY.replace(b"python says", b"python v2 says"))
        one.ok("edit", "py", "--script", str(work / "hello.py"))
        done = one("trigger", "-f", "py", timeout=90)
        assert done.stdout == "python v2 says from py 3\n", done.stderr
        runs = json.loads(one.ok("history", "py", "--json"))
        assert [r["script"]["digest"] for r in runs] == [
            hashlib.sha256((work / "hello.py").read_bytes()).hexdigest(),
            first["digest"],  # type: ignore[index]
        ]

        # Another user sees neither the job nor its script.
        subprocess.run(
            [PYTHON, "-m", "cronhive", "certs", "issue", "mallory", "--dir", str(one.certs)],
            check=True, capture_output=True, env=clean_env(home),
        )  # fmt: skip
        assert one("--as", "mallory", "show", "user:admin/py", "--script").returncode == 3
        assert one("--as", "mallory", "logs", runs[0]["id"]).returncode == 3
        asyncio.run(_mallory_gets_not_found(one, runs[0]["script"]["digest"], runs[0]["id"]))

        # The web UI shows the script to its owner, and to nobody else.
        job_id = json.loads(one.ok("show", "py", "--json"))["id"]
        for user, status in (("admin", 200), ("mallory", 404)):
            token = one.ok(*_as(user), "token", "create").strip()
            auth = {"Authorization": f"Bearer {token}"}
            ca = str(one.certs / "ca.crt")
            page = requests.get(f"{one.web}/jobs/{job_id}/script", headers=auth, verify=ca)
            assert page.status_code == status
            if status == 200:
                assert page.content == (work / "hello.py").read_bytes()
                assert page.headers["content-type"].startswith("text/plain")
                shown = requests.get(f"{one.web}/api/v1/jobs/{job_id}", headers=auth, verify=ca)
                assert shown.json()["script"]["interpreter"] == ["python3"]
                # The web tail reads archived output as it read the table (seqs kept).
                run_id = runs[0]["id"]
                _wait_archived(url, run_id)
                tail = requests.get(
                    f"{one.web}/api/v1/runs/{run_id}/output?after_seq=-1", headers=auth, verify=ca
                ).json()
                assert "".join(c["text"] for c in tail["chunks"]) == "python v2 says from py 3\n"
                assert [c["seq"] for c in tail["chunks"]] == sorted(
                    c["seq"] for c in tail["chunks"]
                )


def _wait_archived(url: str, run_id: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        with psycopg.connect(url) as conn:
            if conn.execute(
                "SELECT 1 FROM output_archives WHERE execution_id = %s", (run_id,)
            ).fetchone():
                chunks = conn.execute(
                    "SELECT count(*) FROM output_chunks WHERE execution_id = %s", (run_id,)
                ).fetchone()
                assert chunks == (0,)
                return
        assert time.monotonic() < deadline, "the run was not archived"
        time.sleep(0.2)


def _as(user: str) -> list[str]:
    return [] if user == "admin" else ["--as", user]


async def _mallory_gets_not_found(cli: Cli, digest: str, run_id: str) -> None:
    """Straight through the API: another user's script and archived output are
    NOT_FOUND, exactly like ones that do not exist."""
    client = await connect(cli.server, cli.certs, cert_name="mallory")
    try:
        for call in (
            client.scripts.GetScript(pb.GetScriptRequest(digest=digest)),
            client.scripts.GetScript(pb.GetScriptRequest(digest="0" * 64)),
            client.runs.StreamOutput(pb.StreamOutputRequest(id=run_id)),
        ):
            with pytest.raises(GRPCError) as caught:
                await call
            assert caught.value.status is Status.NOT_FOUND
    finally:
        await client.aclose()
