"""Real PostgreSQL roles and a target database for SQL job tests, and a real node.

Roles are cluster-wide: each test gets its own, named `wtsql_<what>_<random>`, dropped
after the test (the target database first, so no grant holds a role).
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

from cronhive import runner
from cronhive.auth.certs import init_certs, issue_client_files

PYTHON = sys.executable


def with_db(url: str, dbname: str, user: str | None = None) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc
    if user is not None:
        netloc = f"{user}@{netloc.rpartition('@')[2]}"
    return urlunsplit(parts._replace(path="/" + dbname, netloc=netloc))


@dataclass(frozen=True, kw_only=True)
class SqlEnv:
    """A target database with a login role for the node and roles to SET ROLE to.

    `etl` may read and write `etl_data`; `other` is granted to the login role too but to
    no cronhive user; nobody but postgres may read `secret`. `alice` (a cronhive user) is
    a member of `etl` in PostgreSQL; `bob` of nothing."""

    admin_url: str  # postgres, on the target database
    login_url: str  # the node's login role, on the target database (no password)
    dbname: str
    login: str
    etl: str
    other: str
    alice: str
    bob: str
    password: str  # the login role's password: must never show up anywhere
    role_login_url: str  # one login per role: wtsql_lg_<role>, member of <role> only

    def admin(self, sql: str) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(sql.encode())

    def backends(self, application_name: str) -> int:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                (application_name,),
            ).fetchone()
        return int(row[0]) if row else 0

    def wait_no_backend(self, application_name: str, within: float = 15.0) -> bool:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self.backends(application_name) == 0:
                return True
            time.sleep(0.1)
        return False


@contextmanager
def sql_env(pg_admin_url: str) -> Iterator[SqlEnv]:
    tag = uuid.uuid4().hex[:8]
    names = {k: f"wtsql_{k}_{tag}" for k in ("login", "etl", "other", "alice", "bob")}
    etl_login = f"wtsql_lg_{names['etl']}"
    dbname = f"wtsql_target_{tag}"
    password = f"pw-{secrets.token_hex(12)}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {names['login']} LOGIN PASSWORD '{password}'".encode())
        for k in ("etl", "other", "alice", "bob"):
            conn.execute(f"CREATE ROLE {names[k]} NOLOGIN".encode())
        conn.execute(f"GRANT {names['etl']}, {names['other']} TO {names['login']}".encode())
        conn.execute(f"GRANT {names['etl']} TO {names['alice']}".encode())
        conn.execute(f"CREATE ROLE {etl_login} LOGIN PASSWORD '{password}'".encode())
        conn.execute(f"GRANT {names['etl']} TO {etl_login}".encode())
        conn.execute(f'CREATE DATABASE "{dbname}"'.encode())
    admin_url = with_db(pg_admin_url, dbname)
    env = SqlEnv(
        admin_url=admin_url,
        login_url=with_db(pg_admin_url, dbname, user=names["login"]),
        dbname=dbname,
        password=password,
        role_login_url=with_db(pg_admin_url, dbname, user="wtsql_lg_{role}"),
        **names,
    )
    try:
        env.admin(
            "CREATE TABLE secret (x int); INSERT INTO secret VALUES (1);"
            "CREATE TABLE etl_data (id int, v text);"
            f"GRANT SELECT, INSERT ON etl_data TO {env.etl};"
        )
        yield env
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)'.encode())
            for name in [etl_login, *names.values()]:
                conn.execute(f"DROP ROLE IF EXISTS {name}".encode())


class ListSink:
    """An OutputSink that keeps what it is given (the worker's shipper stands here in
    the executor tests; the node tests use the real one)."""

    def __init__(self) -> None:
        self.chunks: list[runner.Chunk] = []
        self.closed = 0

    async def write(self, chunk: runner.Chunk) -> None:
        self.chunks.append(chunk)

    async def close(self) -> None:
        self.closed += 1

    def stream(self, name: str) -> bytes:
        return b"".join(c.data for c in self.chunks if c.stream == name)


# --- a real node ---------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_certs(directory: Path, users: Sequence[str]) -> Path:
    init_certs(directory, dns_names=["localhost"], ip_addresses=["127.0.0.1"], days=30)
    for user in users:
        issue_client_files(directory, user=user, days=30)
    return directory


def clean_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRONHIVE_")}
    env["HOME"] = str(home)
    return env


@dataclass(frozen=True, kw_only=True)
class Node:
    server: str
    certs: Path
    home: Path
    log: Path
    pid: int

    def __call__(
        self, *args: str, user: str = "admin", timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        argv = [PYTHON, "-m", "cronhive", "--server", self.server, "--certs", str(self.certs)]
        return subprocess.run(
            [*argv, "--as", user, *args],
            capture_output=True,
            text=True,
            env=clean_env(self.home),
            cwd=self.home,
            timeout=timeout,
            check=False,
        )

    def ok(self, *args: str, user: str = "admin") -> str:
        done = self(*args, user=user)
        assert done.returncode == 0, (args, done.returncode, done.stdout, done.stderr)
        return done.stdout


@contextmanager
def running_node(home: Path, config: str, certs: Path | None = None) -> Iterator[Node]:
    """`cronhive server --config` with `config` (TOML; its listen is set here); the
    client certificates are in `certs` (default HOME/certs)."""
    port = free_port()
    path = home / f"node-{port}.toml"
    path.write_text(f'listen = "127.0.0.1:{port}"\nweb = "off"\n{config}')
    log_path = home / f"wtsql-node-{port}.log"
    log = log_path.open("w")
    argv = [PYTHON, "-m", "cronhive", "server", "--config", str(path), "--log-level", "debug"]
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=clean_env(home))
    node = Node(
        server=f"127.0.0.1:{port}",
        certs=certs or home / "certs",
        home=home,
        log=log_path,
        pid=proc.pid,
    )
    try:
        done = node("nodes", "--wait", "30")
        if done.returncode != 0:
            raise RuntimeError(f"node did not start: {done.stderr}\n{log_path.read_text()}")
        yield node
    finally:
        proc.send_signal(signal.SIGCONT)  # in case a test froze it
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
