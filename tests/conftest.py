"""Shared test ground: a fresh PostgreSQL database per test, or a skip that says how.

`CRONHIVE_TEST_PG` names a server (default postgres@127.0.0.1:5432, trust auth). With `CI`
set, an unreachable server fails the run: CI must never pass by skipping PostgreSQL.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

PG_ADMIN_URL = os.environ.get("CRONHIVE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def _with_db(url: str, dbname: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + dbname))


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    try:
        psycopg.connect(PG_ADMIN_URL, connect_timeout=3).close()
    except psycopg.Error as exc:
        msg = (
            f"PostgreSQL not reachable at {PG_ADMIN_URL} ({exc}); set CRONHIVE_TEST_PG "
            "to a server where user may create databases to run these tests"
        )
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return PG_ADMIN_URL


PgDatabaseFactory = Callable[[str | None], str]


@pytest.fixture
def pg_database(pg_admin_url: str) -> Iterator[PgDatabaseFactory]:
    """Creates fresh databases (optionally copied from a template) and drops them after."""
    created: list[str] = []

    def create(template: str | None = None) -> str:
        name = f"cronhive_t_{uuid.uuid4().hex[:12]}"
        tpl = f' TEMPLATE "{template}"' if template else ""
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"{tpl}')
        created.append(name)
        return _with_db(pg_admin_url, name)

    yield create
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        for name in created:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def pg_url_for(admin_url: str, dbname: str) -> str:
    """The URL of database `dbname` on the server of `admin_url`."""
    return _with_db(admin_url, dbname)


# pytest-xdist, `--dist loadgroup` (scripts/test): each module runs whole on one worker
# (its module-scoped nodes and browsers start once). The tests below run one after
# another on one worker, first of all (the longest unit): the chaos tests start private
# PostgreSQL clusters and stop nodes (SIGSTOP), the cluster test fires 200 jobs a second,
# on lease timings that two of them at once on a 2-core host would starve. The groups are
# made here, from node ids, not by xdist_group marks: xdist writes a mark's group into the
# item's node id, which pytest 9.2 no longer reads (pytest-dev/pytest-xdist#1386).
_ONE_WORKER = ("tests/chaos/", "tests/engine/test_cluster.py")
_ONE_WORKER_GROUP = "one-worker"


def xdist_group(nodeid: str) -> str:
    """The unit of work of a test: _ONE_WORKER_GROUP, else its module."""
    path = nodeid.split("::", 1)[0]
    return _ONE_WORKER_GROUP if path.startswith(_ONE_WORKER) else path


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class _ByGroup(LoadScopeScheduling):  # type: ignore[misc]  # xdist is untyped
        def _split_scope(self, nodeid: str) -> str:
            return xdist_group(nodeid)

        def _assign_work_unit(self, node: Any) -> None:
            if _ONE_WORKER_GROUP in self.workqueue:
                self.workqueue.move_to_end(_ONE_WORKER_GROUP, last=False)
            super()._assign_work_unit(node)

    return _ByGroup(config, log)
