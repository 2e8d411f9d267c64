"""The SQL executor on a real PostgreSQL with real roles: SET ROLE, the role rule, the
output format byte for byte, timeouts and stops that leave no backend behind."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest
from sqlkit import ListSink, SqlEnv

from cronhive import runner
from cronhive.auth.policy import Policy, parse_policy
from cronhive.errors import PermissionDenied, StoreUnavailable
from cronhive.model import SqlSpec
from cronhive.sqljobs import (
    EXIT_CANCELED,
    EXIT_CONNECTION,
    EXIT_REFUSED,
    EXIT_SQL_ERROR,
    SqlJobs,
    SqlRun,
    SqlTarget,
)

pytestmark = pytest.mark.postgres


def grants(env: SqlEnv) -> Policy:
    return parse_policy(f'[users.alice.sql]\nwh = ["{env.etl}"]\n')


def jobs(env: SqlEnv, tmp_path: Path, *, identity: str = "policy") -> SqlJobs:
    pw = tmp_path / "pw"
    pw.write_text(env.password + "\n")
    target = SqlTarget(name="wh", url=env.login_url, password_file=pw, identity=identity)
    return SqlJobs({"wh": target}, grants(env), grace=1.0)


def start(
    sql: SqlJobs,
    statement: str,
    role: str,
    *,
    owner: str = "user:alice",
    timeout: float | None = None,
    autocommit: bool = False,
    cap: int | None = None,
    run_id: str = "r1",
) -> tuple[SqlRun, ListSink]:
    sink = ListSink()
    spec = SqlSpec(statement=statement, database="wh", role=role, autocommit=autocommit)
    run = sql.start(
        run_id=run_id, owner=owner, spec=spec, timeout=timeout, sink=sink, output_cap=cap
    )
    return run, sink


async def test_runs_as_the_role_and_prints_tag_then_csv(env: SqlEnv, tmp_path: Path) -> None:
    run, sink = start(jobs(env, tmp_path), "SELECT current_user", env.etl)
    result = await run.wait()
    assert (result.state, result.exit_code, result.error) == (runner.RunState.SUCCEEDED, 0, None)
    assert sink.stream("stdout") == f"SELECT 1\n\ncurrent_user\n{env.etl}\n".encode()
    assert sink.stream("stderr") == b""
    assert result.stdout_bytes == len(sink.stream("stdout"))
    assert sink.closed == 1


async def test_csv_is_byte_exact_for_nulls_quotes_and_newlines(env: SqlEnv, tmp_path: Path) -> None:
    statement = (
        "SELECT * FROM (VALUES (1, NULL::text, 'plain'), (2, '', 'a,b'),"
        " (3, 'say \"hi\"', E'two\\nlines'), (4, E'cr\\rhere', '\\.')) AS t(\"n\", \"a,b\", c)"
    )
    run, sink = start(jobs(env, tmp_path), statement, env.etl)
    assert (await run.wait()).exit_code == 0
    assert sink.stream("stdout") == (
        b'SELECT 4\n\nn,"a,b",c\n'
        b"1,,plain\n"
        b'2,"","a,b"\n'
        b'3,"say ""hi""","two\nlines"\n'
        b'4,"cr\rhere",\\.\n'
    )
    # The same bytes as PostgreSQL's own CSV (COPY ... CSV HEADER), which defines it.
    copy = f"COPY ({statement}) TO STDOUT WITH (FORMAT csv, HEADER)".encode()
    with psycopg.connect(env.admin_url) as conn, conn.cursor() as cur, cur.copy(copy) as cp:
        ours = b"".join(bytes(b) for b in cp)
    assert sink.stream("stdout").split(b"\n\n", 1)[1] == ours
    run, sink = start(jobs(env, tmp_path), "SELECT '\\.' AS v UNION ALL SELECT NULL", env.etl)
    assert (await run.wait()).exit_code == 0
    assert sink.stream("stdout") == b'SELECT 2\n\nv\n"\\."\n\n'


async def test_tags_notices_and_one_transaction(env: SqlEnv, tmp_path: Path) -> None:
    text = (
        "INSERT INTO etl_data VALUES (1, 'a'), (2, 'b');"
        "DO $$BEGIN RAISE NOTICE 'halfway'; RAISE WARNING 'careful'; END$$;"
        "SELECT count(*) AS n FROM etl_data"
    )
    run, sink = start(jobs(env, tmp_path), text, env.etl)
    assert (await run.wait()).exit_code == 0
    assert sink.stream("stdout") == (
        b"NOTICE:  halfway\nWARNING:  careful\nINSERT 0 2\nDO\nSELECT 1\n\nn\n2\n"
    )
    # A failing statement rolls the whole text back (one transaction by default).
    run, sink = start(
        jobs(env, tmp_path), "INSERT INTO etl_data VALUES (3, 'c'); SELECT 1/0", env.etl
    )
    result = await run.wait()
    assert (result.state, result.exit_code) == (runner.RunState.FAILED, EXIT_SQL_ERROR)
    assert b"SQLSTATE: 22012" in sink.stream("stderr")
    with psycopg.connect(env.admin_url) as conn:
        assert conn.execute("SELECT count(*) FROM etl_data").fetchone() == (2,)


async def test_autocommit_runs_what_a_transaction_cannot(env: SqlEnv, tmp_path: Path) -> None:
    env.admin(f"ALTER TABLE etl_data OWNER TO {env.etl}")
    run, sink = start(jobs(env, tmp_path), "VACUUM ANALYZE etl_data", env.etl)
    result = await run.wait()
    assert (result.state, result.exit_code) == (runner.RunState.FAILED, EXIT_SQL_ERROR)
    assert b"SQLSTATE: 25001" in sink.stream("stderr")  # active_sql_transaction
    run, sink = start(jobs(env, tmp_path), "VACUUM ANALYZE etl_data", env.etl, autocommit=True)
    assert (await run.wait()).exit_code == 0
    assert sink.stream("stdout") == b"VACUUM\n"


async def test_no_privilege_fails_with_sqlstate_42501(env: SqlEnv, tmp_path: Path) -> None:
    run, sink = start(jobs(env, tmp_path), "SELECT x\nFROM secret", env.etl)
    result = await run.wait()
    assert (result.state, result.exit_code) == (runner.RunState.FAILED, EXIT_SQL_ERROR)
    assert sink.stream("stderr") == (
        b"ERROR:  permission denied for table secret\nSQLSTATE: 42501\n"
    )
    run, sink = start(jobs(env, tmp_path), "SELECT nope FROM etl_data", env.etl)
    await run.wait()
    assert sink.stream("stderr").decode().splitlines() == [
        'ERROR:  column "nope" does not exist',
        "SQLSTATE: 42703",
        "POSITION: 8",
    ]


async def test_a_role_not_granted_is_refused_before_anything_runs(
    env: SqlEnv, tmp_path: Path
) -> None:
    # `other` is granted to the node's login role, but no policy grants it to alice.
    run, sink = start(jobs(env, tmp_path), "INSERT INTO etl_data VALUES (9, 'x')", env.other)
    result = await run.wait()
    assert (result.state, result.exit_code) == (runner.RunState.FAILED, EXIT_REFUSED)
    assert result.error == (
        f"refused: user:alice may not run SQL as role {env.other!r} on database 'wh' "
        "(no policy grant)"
    )
    assert sink.stream("stderr") == f"cronhive: {result.error}\n".encode()
    assert sink.stream("stdout") == b""
    with pytest.raises(PermissionDenied, match="no policy grant"):
        spec = SqlSpec(statement="x", database="wh", role=env.other)
        await jobs(env, tmp_path).check("user:alice", spec)


async def test_identity_postgres_follows_membership_live(env: SqlEnv, tmp_path: Path) -> None:
    sql = jobs(env, tmp_path, identity="postgres")
    spec = SqlSpec(statement="SELECT current_user", database="wh", role=env.etl)
    await sql.check(f"user:{env.alice}", spec)  # a member in PostgreSQL: allowed
    run, _ = start(sql, "SELECT current_user", env.etl, owner=f"user:{env.alice}")
    assert (await run.wait()).exit_code == 0
    env.admin(f"REVOKE {env.etl} FROM {env.alice}")
    run, _ = start(sql, "SELECT current_user", env.etl, owner=f"user:{env.alice}")
    result = await run.wait()
    assert (result.state, result.exit_code) == (runner.RunState.FAILED, EXIT_REFUSED)
    assert result.error is not None and "is not a member" in result.error
    # bob is no member; a cronhive user without a PostgreSQL role is refused too.
    for owner in (f"user:{env.bob}", "user:wtsql_nobody_here"):
        with pytest.raises(PermissionDenied):
            await sql.check(owner, spec)


async def test_timeout_ends_timed_out_and_the_backend_is_gone(env: SqlEnv, tmp_path: Path) -> None:
    run, sink = start(jobs(env, tmp_path), "SELECT pg_sleep(60)", env.etl, timeout=2.0)
    result = await asyncio.wait_for(run.wait(), 30)
    assert (result.state, result.exit_code) == (runner.RunState.TIMED_OUT, EXIT_CANCELED)
    assert b"SQLSTATE: 57014" in sink.stream("stderr")
    assert await asyncio.to_thread(env.wait_no_backend, "cronhive run r1")


async def test_stop_cancels_the_backend(env: SqlEnv, tmp_path: Path) -> None:
    run, _ = start(jobs(env, tmp_path), "SELECT pg_sleep(60)", env.etl, run_id="r2")
    for _ in range(100):  # until the statement is on the server
        if await asyncio.to_thread(env.backends, "cronhive run r2"):
            break
        await asyncio.sleep(0.1)
    result = await asyncio.wait_for(run.stop(grace=5.0), 30)
    assert (result.state, result.exit_code) == (runner.RunState.STOPPED, EXIT_CANCELED)
    assert await asyncio.to_thread(env.wait_no_backend, "cronhive run r2")


async def test_stop_terminates_a_backend_that_ignores_cancel(env: SqlEnv, tmp_path: Path) -> None:
    # A function that swallows query_canceled keeps the statement going: terminate ends it.
    env.admin(
        "CREATE FUNCTION stubborn() RETURNS void LANGUAGE plpgsql AS $$ BEGIN LOOP BEGIN "
        "PERFORM pg_sleep(0.1); EXCEPTION WHEN query_canceled THEN NULL; END; END LOOP; END $$;"
        f"GRANT EXECUTE ON FUNCTION stubborn() TO {env.etl}"
    )
    run, _ = start(jobs(env, tmp_path), "SELECT stubborn()", env.etl, run_id="r3")
    for _ in range(100):
        if await asyncio.to_thread(env.backends, "cronhive run r3"):
            break
        await asyncio.sleep(0.1)
    result = await asyncio.wait_for(run.stop(grace=1.0), 30)
    assert result.state is runner.RunState.STOPPED
    assert await asyncio.to_thread(env.wait_no_backend, "cronhive run r3")


async def test_output_cap_keeps_the_first_bytes(env: SqlEnv, tmp_path: Path) -> None:
    run, sink = start(
        jobs(env, tmp_path), "SELECT g FROM generate_series(1, 100000) g", env.etl, cap=100
    )
    result = await run.wait()
    assert result.output_capped and result.exit_code == 0
    assert (
        sink.stream("stdout")
        == b"SELECT 100000\n\ng\n"
        + b"".join(b"%d\n" % i for i in range(1, 40))[: 100 - len(b"SELECT 100000\n\ng\n")]
    )


async def test_unreachable_database_exits_2_without_the_password(
    env: SqlEnv, tmp_path: Path
) -> None:
    pw = tmp_path / "pw"
    pw.write_text(env.password)
    dead = SqlTarget(name="wh", url="postgresql://u@127.0.0.1:1/x", password_file=pw)
    sql = SqlJobs({"wh": dead}, grants(env))
    run, sink = start(sql, "SELECT 1", env.etl)
    result = await run.wait()
    assert (result.state, result.exit_code) == (runner.RunState.FAILED, EXIT_CONNECTION)
    assert result.error is not None and result.error.startswith("cannot connect to database 'wh'")
    assert env.password not in result.error
    assert env.password.encode() not in sink.stream("stderr")


async def test_the_next_attempt_of_a_slot_fences_off_a_stale_one(
    env: SqlEnv, tmp_path: Path
) -> None:
    """A node whose lease lapsed may be frozen and cancel nothing: the next attempt of the
    slot terminates the backend still holding the slot before it runs anything."""
    sql = jobs(env, tmp_path)
    stale_spec = SqlSpec(
        statement="INSERT INTO etl_data VALUES (1, 'stale'); SELECT pg_sleep(60)",
        database="wh",
        role=env.etl,
    )
    stale_sink = ListSink()
    stale = sql.start(
        run_id="old", owner="user:alice", spec=stale_spec, timeout=None,
        sink=stale_sink, output_cap=None, slot="job-1@03:00",
    )  # fmt: skip
    for _ in range(100):
        if await asyncio.to_thread(env.backends, "cronhive run old"):
            break
        await asyncio.sleep(0.1)
    fresh_sink = ListSink()
    fresh_spec = SqlSpec(statement="SELECT count(*) FROM etl_data", database="wh", role=env.etl)
    fresh = sql.start(
        run_id="new", owner="user:alice", spec=fresh_spec, timeout=None,
        sink=fresh_sink, output_cap=None, slot="job-1@03:00",
    )  # fmt: skip
    result = await asyncio.wait_for(fresh.wait(), 30)
    assert result.exit_code == 0
    assert fresh_sink.stream("stdout") == b"SELECT 1\n\ncount\n0\n"  # the stale insert is gone
    old = await asyncio.wait_for(stale.wait(), 30)
    assert (old.state, old.exit_code) == (runner.RunState.FAILED, EXIT_CONNECTION)
    assert b"SQLSTATE: 57P01" in stale_sink.stream("stderr")  # admin_shutdown: terminated
    # Another slot is not touched.
    other = sql.start(
        run_id="other", owner="user:alice", spec=fresh_spec, timeout=None,
        sink=ListSink(), output_cap=None, slot="job-1@04:00",
    )  # fmt: skip
    assert (await other.wait()).exit_code == 0


async def test_what_the_driver_refuses_is_a_statement_failure(env: SqlEnv, tmp_path: Path) -> None:
    # COPY ... TO STDOUT needs the copy protocol: refused by the driver, no SQLSTATE.
    run, sink = start(jobs(env, tmp_path), "COPY etl_data TO STDOUT", env.etl)
    result = await run.wait()
    assert (result.state, result.exit_code) == (runner.RunState.FAILED, EXIT_SQL_ERROR)
    assert sink.stream("stderr").startswith(b"ERROR:  ")


async def test_notices_are_written_while_the_statement_runs(env: SqlEnv, tmp_path: Path) -> None:
    text = "DO $$BEGIN RAISE NOTICE 'started'; PERFORM pg_sleep(30); END$$"
    run, sink = start(jobs(env, tmp_path), text, env.etl, timeout=60.0, run_id="r4")
    async with asyncio.timeout(20):
        while sink.stream("stdout") != b"NOTICE:  started\n":
            await asyncio.sleep(0.05)
    assert not run._task.done()  # still running: the notice came live
    result = await asyncio.wait_for(run.stop(grace=5.0), 30)
    assert result.state is runner.RunState.STOPPED
    assert sink.stream("stdout") == b"NOTICE:  started\n"


async def test_an_unreadable_password_file_fails_the_run_not_the_node(
    env: SqlEnv, tmp_path: Path
) -> None:
    gone = SqlTarget(name="wh", url=env.login_url, password_file=tmp_path / "missing")
    sql = SqlJobs({"wh": gone}, grants(env))
    run, sink = start(sql, "SELECT 1", env.etl)
    result = await run.wait()
    assert (result.state, result.exit_code) == (runner.RunState.FAILED, EXIT_CONNECTION)
    assert result.error == "cannot read the password of database 'wh': FileNotFoundError"
    assert sink.stream("stderr") == f"cronhive: {result.error}\n".encode()
    with pytest.raises(StoreUnavailable, match="cannot read the password"):
        await SqlJobs({"wh": replace(gone, identity="postgres")}, grants(env)).check(
            "user:bob", SqlSpec(statement="SELECT 1", database="wh", role=env.etl)
        )


ESCAPE = "RESET ROLE; SET ROLE {other}; SELECT current_user"


async def test_one_login_for_all_roles_lets_a_statement_switch_roles(
    env: SqlEnv, tmp_path: Path
) -> None:
    """The documented limit of one shared login: SET ROLE is not a wall, a statement may
    switch to any other role granted to the login (docs/sql-jobs.md)."""
    run, sink = start(jobs(env, tmp_path), ESCAPE.format(other=env.other), env.etl)
    assert (await run.wait()).exit_code == 0
    assert sink.stream("stdout").endswith(f"current_user\n{env.other}\n".encode())


async def test_one_login_per_role_leaves_nothing_to_switch_to(env: SqlEnv, tmp_path: Path) -> None:
    pw = tmp_path / "pw-{role}"
    (tmp_path / f"pw-{env.etl}").write_text(env.password)
    target = SqlTarget(name="wh", url=env.role_login_url, password_file=pw)
    sql = SqlJobs({"wh": target}, grants(env), grace=1.0)
    run, sink = start(sql, "SELECT current_user, session_user", env.etl)
    assert (await run.wait()).exit_code == 0
    assert sink.stream("stdout") == (
        f"SELECT 1\n\ncurrent_user,session_user\n{env.etl},wtsql_lg_{env.etl}\n".encode()
    )
    run, sink = start(sql, ESCAPE.format(other=env.other), env.etl)
    result = await run.wait()
    assert (result.state, result.exit_code) == (runner.RunState.FAILED, EXIT_SQL_ERROR)
    assert sink.stream("stderr").splitlines()[:2] == [
        f'ERROR:  permission denied to set role "{env.other}"'.encode(),
        b"SQLSTATE: 42501",
    ]
    # The role rule still decides first: no login for `other` is even tried.
    run, sink = start(sql, "SELECT 1", env.other)
    assert (await run.wait()).exit_code == EXIT_REFUSED
