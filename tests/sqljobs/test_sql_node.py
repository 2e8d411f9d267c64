"""SQL jobs end to end: a real node (`cronhive server`) on PostgreSQL, the real CLI and
gRPC client, real roles in a real target database."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from grpclib.const import Status
from grpclib.exceptions import GRPCError
from sqlkit import Node, SqlEnv, make_certs, running_node

from cronhive.api._generated.cronhive.v1 import cronhive_pb2 as pb
from cronhive.api.client import connect

pytestmark = pytest.mark.postgres


@pytest.fixture
def node(
    env: SqlEnv, pg_database: Callable[[str | None], str], tmp_path: Path
) -> Iterator[tuple[Node, str]]:
    store_url = pg_database(None)
    make_certs(tmp_path / "certs", [env.alice, env.bob])
    (tmp_path / "pw").write_text(env.password + "\n")
    (tmp_path / "policy.toml").write_text(
        f'[defaults]\nroles = ["scheduler"]\n[users.admin]\nroles = ["admin"]\n'
        f'[users.{env.alice}.sql]\nwh = ["{env.etl}"]\n'
    )
    config = (
        f'data_dir = "{tmp_path / "data"}"\ndb = "{store_url}"\n'
        f'certs_dir = "{tmp_path / "certs"}"\npolicy = "{tmp_path / "policy.toml"}"\n'
        'isolation = "none"\ngrace = 2\n'
        f'[databases.wh]\nurl = "{env.login_url}"\npassword_file = "{tmp_path / "pw"}"\n'
        f'[databases.whpg]\nurl = "{env.login_url}"\npassword_file = "{tmp_path / "pw"}"\n'
        'identity = "postgres"\n'
    )
    with running_node(tmp_path, config) as n:
        yield n, store_url


def sql_args(env: SqlEnv, statement: str, database: str = "wh") -> list[str]:
    return ["--sql", statement, "--database", database, "--role", env.etl]


def test_a_granted_role_runs_and_its_output_shows_the_role(
    env: SqlEnv, node: tuple[Node, str]
) -> None:
    n, _ = node
    n.ok("add", "who", "--cron", "0 3 * * *", *sql_args(env, "SELECT current_user"), user=env.alice)
    done = n("trigger", "-f", "who", user=env.alice)
    assert (done.returncode, done.stdout) == (0, f"SELECT 1\n\ncurrent_user\n{env.etl}\n")
    shown = json.loads(n.ok("show", "who", "--json", user=env.alice))
    assert shown["command"] == [] and shown["sql"] == {
        "statement": "SELECT current_user",
        "database": "wh",
        "role": env.etl,
        "autocommit": False,
    }
    (run,) = json.loads(n.ok("history", "who", "--json", user=env.alice))
    assert (run["state"], run["exit_code"]) == ("succeeded", 0)
    # edit: to a command and back to SQL, only the given flags change.
    n.ok("edit", "who", "--", "true", user=env.alice)
    shown = json.loads(n.ok("show", "who", "--json", user=env.alice))
    assert (shown["command"], shown["sql"]) == (["true"], None)
    n.ok("edit", "who", *sql_args(env, "SELECT 2 AS two"), "--autocommit", user=env.alice)
    shown = json.loads(n.ok("show", "who", "--json", user=env.alice))
    assert shown["command"] == [] and shown["sql"]["autocommit"] is True
    assert n.ok("trigger", "-f", "who", user=env.alice) == "SELECT 1\n\ntwo\n2\n"
    # Ad hoc, and from a file with apply -f.
    adhoc = n("run", "-f", *sql_args(env, "SELECT 40 + 2 AS answer"), user=env.alice)
    assert (adhoc.returncode, adhoc.stdout) == (0, "SELECT 1\n\nanswer\n42\n")
    jobs = n.home / "jobs.toml"
    (n.home / "q.sql").write_text("SELECT 'from file' AS src")
    jobs.write_text(
        f'[jobs.filed]\nsql_file = "{n.home / "q.sql"}"\ndatabase = "wh"\nrole = "{env.etl}"\n'
    )
    n.ok("apply", "-f", str(jobs), user=env.alice)
    assert n.ok("trigger", "-f", "filed", user=env.alice) == "SELECT 1\n\nsrc\nfrom file\n"
    assert "1 unchanged" in n.ok("apply", "-f", str(jobs), user=env.alice)


def test_a_role_not_allowed_is_refused_at_create(env: SqlEnv, node: tuple[Node, str]) -> None:
    n, _ = node
    refused = n("add", "nope", *sql_args(env, "SELECT 1"), user=env.bob)
    assert refused.returncode == 2
    assert f"user:{env.bob} may not run SQL as role {env.etl!r}" in refused.stderr
    unknown = n("run", *sql_args(env, "SELECT 1", database="nowhere"), user=env.alice)
    assert unknown.returncode == 2 and "not a database of this node" in unknown.stderr

    async def grpc() -> None:
        async with await connect(n.server, n.certs, cert_name=env.bob) as client:
            job = pb.Job(
                name="nope",
                sql=pb.SqlSpec(statement="SELECT 1", database="wh", role=env.etl),
            )
            with pytest.raises(GRPCError) as caught:
                await client.jobs.Create(pb.CreateJobRequest(job=job))
            assert caught.value.status is Status.PERMISSION_DENIED
            start = pb.StartRunRequest(sql=job.sql)
            with pytest.raises(GRPCError) as caught:
                await client.runs.Start(start)
            assert caught.value.status is Status.PERMISSION_DENIED
            # Malformed SQL requests are INVALID_ARGUMENT, naming the field.
            bad = [
                (pb.SqlSpec(statement=" ", database="wh", role=env.etl), [], "sql.statement"),
                (pb.SqlSpec(statement="SELECT 1", database="wh", role=""), [], "sql.role"),
                (pb.SqlSpec(statement="SELECT 1", database="wh", role=env.etl), ["ls"], "command"),
            ]
            async with await connect(n.server, n.certs, cert_name=env.alice) as alice:
                for sql, command, field in bad:
                    with pytest.raises(GRPCError) as caught:
                        await alice.runs.Start(pb.StartRunRequest(sql=sql, command=command))
                    assert caught.value.status is Status.INVALID_ARGUMENT
                    assert (caught.value.message or "").startswith(f"{field}: ")
        await asyncio.sleep(0.1)  # the closed channel's transport finishes closing

    asyncio.run(grpc())
    assert "nope" not in n.ok("ls", user=env.bob)


def test_membership_revoked_after_creation_refuses_the_next_run(
    env: SqlEnv, node: tuple[Node, str]
) -> None:
    n, _ = node
    n.ok("add", "member", *sql_args(env, "SELECT current_user", "whpg"), user=env.alice)
    assert n("trigger", "-f", "member", user=env.alice).returncode == 0
    env.admin(f"REVOKE {env.etl} FROM {env.alice}")
    refused = n("trigger", "-f", "member", user=env.alice)
    assert refused.returncode == 3  # the documented exit code of a refused run
    assert "is not a member" in refused.stderr
    last = json.loads(n.ok("history", "member", "--json", user=env.alice))[0]
    assert last["state"] == "failed"
    assert last["reason"] == (
        f"refused: user:{env.alice} may not run SQL as role {env.etl!r} on database 'whpg': "
        f"{env.alice!r} is not a member of {env.etl!r} (pg_has_role)"
    )
    # ... and changing the job is refused too now.
    changed = n("edit", "member", "--description", "x", user=env.alice)
    assert changed.returncode == 2 and "is not a member" in changed.stderr


def test_no_privilege_fails_with_42501(env: SqlEnv, node: tuple[Node, str]) -> None:
    n, _ = node
    done = n("run", "-f", *sql_args(env, "SELECT * FROM secret"), user=env.alice)
    assert done.returncode == 1
    assert done.stderr.splitlines()[1:3] == [
        "ERROR:  permission denied for table secret",
        "SQLSTATE: 42501",
    ]
    # Retries apply as to any job: a failed SQL run is attempted again.
    n.ok("add", "denied", "--retries", "1", "--retry-delay", "1s",
         *sql_args(env, "SELECT * FROM secret"), user=env.alice)  # fmt: skip
    assert n("trigger", "-f", "denied", user=env.alice).returncode == 1
    deadline = time.monotonic() + 30
    runs: list[dict[str, object]] = []
    while time.monotonic() < deadline:
        runs = json.loads(n.ok("history", "denied", "--json", user=env.alice))
        if len(runs) == 2 and runs[0]["state"] == "failed":
            break
        time.sleep(0.2)
    assert [(r["attempt"], r["state"], r["exit_code"]) for r in runs] == [
        (2, "failed", 1),
        (1, "failed", 1),
    ]


def _status(n: Node, run_id: str, user: str) -> dict[str, object]:
    return dict(json.loads(n.ok("status", run_id, "--json", user=user)))


def _until_running(env: SqlEnv, n: Node, run_id: str, user: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if env.backends(f"cronhive run {run_id}"):
            return
        time.sleep(0.1)
    raise AssertionError(f"run {run_id} never reached the database: {_status(n, run_id, user)}")


def test_timeout_and_stop_end_the_backend(env: SqlEnv, node: tuple[Node, str]) -> None:
    n, _ = node
    me = env.alice
    timed = n("run", "-f", "--timeout", "2s", *sql_args(env, "SELECT pg_sleep(60)"), user=me)
    assert timed.returncode == 1
    run_id = timed.stderr.splitlines()[0].removeprefix("run ")
    status = _status(n, run_id, me)
    assert (status["state"], status["exit_code"], status["reason"]) == (
        "timed_out",
        4,
        "timed out after 2s",
    )
    assert env.wait_no_backend(f"cronhive run {run_id}")

    run_id = n.ok("run", *sql_args(env, "SELECT pg_sleep(60)"), user=me).strip()
    _until_running(env, n, run_id, me)
    n.ok("stop", run_id, user=me)
    deadline = time.monotonic() + 30
    while _status(n, run_id, me)["state"] == "running" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _status(n, run_id, me)["state"] == "stopped"
    assert env.wait_no_backend(f"cronhive run {run_id}")


def test_csv_rows_through_the_whole_path(env: SqlEnv, node: tuple[Node, str]) -> None:
    n, _ = node
    statement = "SELECT NULL::text AS a, '' AS b, 'q\"uote' AS c, E'new\\nline' AS d"
    run_id = n.ok("run", *sql_args(env, statement), user=env.alice).strip()
    done = n("logs", "-f", run_id, user=env.alice)
    assert done.stdout == 'SELECT 1\n\na,b,c,d\n,"","q""uote","new\nline"\n'


def test_listen_hears_the_runs_events_without_secrets(env: SqlEnv, node: tuple[Node, str]) -> None:
    n, store_url = node
    heard: list[dict[str, object]] = []
    with psycopg.connect(store_url, autocommit=True) as listener:
        listener.execute("LISTEN cronhive_events")
        run_id = n.ok("run", *sql_args(env, "SELECT 1"), user=env.alice).strip()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            for note in listener.notifies(timeout=1.0):
                assert env.password not in note.payload
                heard.append(json.loads(note.payload))
            if any(e["kind"] == "run.finished" and e["execution_id"] == run_id for e in heard):
                break
    mine = [e for e in heard if e["execution_id"] == run_id]
    assert mine[0]["kind"] == "run.queued"
    assert "run.finished" in [e["kind"] for e in mine]
    assert {e["owner"] for e in mine} == {f"user:{env.alice}"}
    assert set(mine[0]) == {"id", "at", "kind", "owner", "job_id", "execution_id", "message"}


def test_credentials_appear_in_no_answer_log_or_event(env: SqlEnv, node: tuple[Node, str]) -> None:
    n, store_url = node
    me = env.alice
    n.ok("add", "creds", *sql_args(env, "SELECT current_user"), user=me)
    n("trigger", "-f", "creds", user=me)
    n("run", "-f", *sql_args(env, "SELECT * FROM secret"), user=me)
    answers = [
        n.ok("show", "creds", "--json", user=me),
        n.ok("history", "creds", "--json", user=me),
        n.ok("ls", "--json", user=me),
    ]
    with psycopg.connect(store_url) as conn:
        ids = [str(r[0]) for r in conn.execute("SELECT id FROM executions").fetchall()]
    assert len(ids) == 2
    for run_id in ids:
        answers.append(n.ok("status", run_id, "--json", user="admin"))
        answers.append(n("logs", run_id, user="admin").stderr)
    with psycopg.connect(store_url) as conn:
        rows = conn.execute("SELECT kind, coalesce(owner, ''), message FROM events").fetchall()
        stored = conn.execute("SELECT sql::text, coalesce(reason, '') FROM executions").fetchall()
    assert rows and stored
    everything = "\n".join([*answers, *map(str, rows), *map(str, stored), n.log.read_text()])
    assert env.password not in everything
    assert "password" not in n.log.read_text().lower()


def test_a_frozen_nodes_statement_is_fenced_off_by_the_next_attempt(
    env: SqlEnv, pg_database: Callable[[str | None], str], tmp_path: Path
) -> None:
    """Node A runs a statement and freezes (SIGSTOP: it cancels nothing). Its lease lapses,
    node B reaps the run as lost and takes the next attempt, which terminates A's backend
    in the target database before it runs: A's uncommitted insert never lands."""
    store_url = pg_database(None)
    certs = make_certs(tmp_path / "certs", [env.alice])
    (tmp_path / "pw").write_text(env.password + "\n")
    (tmp_path / "policy.toml").write_text(f'[users.{env.alice}.sql]\nwh = ["{env.etl}"]\n')

    def config(name: str) -> str:
        (tmp_path / name).mkdir()
        return (
            f'name = "{name}"\ndata_dir = "{tmp_path / name / "data"}"\ndb = "{store_url}"\n'
            f'certs_dir = "{certs}"\npolicy = "{tmp_path / "policy.toml"}"\n'
            'isolation = "none"\nlease_ttl = 2\n'
            f'[databases.wh]\nurl = "{env.login_url}"\npassword_file = "{tmp_path / "pw"}"\n'
        )

    statement = "INSERT INTO etl_data VALUES (1, 'attempt'); SELECT pg_sleep(20)"
    with running_node(tmp_path, config("a"), certs) as a:
        run_id = a.ok("run", *sql_args(env, statement), user=env.alice).strip()
        _until_running(env, a, run_id, env.alice)
        with running_node(tmp_path, config("b"), certs):
            os.kill(a.pid, signal.SIGSTOP)
            try:
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    with psycopg.connect(store_url) as conn:
                        states = conn.execute(
                            "SELECT attempt, state FROM executions ORDER BY attempt"
                        ).fetchall()
                    if len(states) == 2 and states[1][1] == "running":
                        break
                    time.sleep(0.2)
                assert [s for _, s in states] == ["lost", "running"], states
                # The first attempt's backend is gone: terminated by the second one.
                assert env.wait_no_backend(f"cronhive run {run_id}")
                with psycopg.connect(env.admin_url) as conn:
                    row = conn.execute("SELECT count(*) FROM etl_data").fetchone()
                assert row == (0,)  # the stale attempt's insert never committed
            finally:
                os.kill(a.pid, signal.SIGCONT)
