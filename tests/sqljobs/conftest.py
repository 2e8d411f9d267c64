"""SQL job tests: real PostgreSQL roles and databases (see sqlkit)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlkit import SqlEnv, sql_env

pytestmark = pytest.mark.postgres


@pytest.fixture
def env(pg_admin_url: str) -> Iterator[SqlEnv]:
    with sql_env(pg_admin_url) as e:
        yield e
