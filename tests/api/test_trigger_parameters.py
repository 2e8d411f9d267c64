"""`validate.parameters`: a trigger's env and args over a job's run spec, held to the
job's own limits; a SQL job takes none."""

from __future__ import annotations

import pytest

from cronhive.api import validate
from cronhive.errors import InvalidInput
from cronhive.model import RunSpec, SqlSpec


def test_env_over_the_jobs_and_args_after_its_command() -> None:
    run = RunSpec(command=("echo", "a"), env={"A": "1", "B": "2"})
    got = validate.parameters(run, {"B": "3", "C": "4"}, ["x y", "z"])
    assert got.command == ("echo", "a", "x y", "z")
    assert dict(got.env) == {"A": "1", "B": "3", "C": "4"}
    assert validate.parameters(run, {}, []) is run


@pytest.mark.parametrize(
    ("env", "args", "said"),
    [
        ({"1BAD": "x"}, [], "bad variable name"),
        ({}, ["x" * 5000], "longer than 4096 bytes"),
        ({}, ["nul\x00"], "contains NUL"),
        ({}, ["a"] * 300, "at most 256 arguments"),
    ],
)
def test_the_jobs_limits_hold(env: dict[str, str], args: list[str], said: str) -> None:
    with pytest.raises(InvalidInput, match=said):
        validate.parameters(RunSpec(command=("true",)), env, args)


def test_a_sql_job_takes_no_parameters() -> None:
    run = RunSpec(command=(), sql=SqlSpec(statement="SELECT 1", database="wh", role="etl"))
    with pytest.raises(InvalidInput, match="a SQL job takes no env or arguments"):
        validate.parameters(run, {}, ["x"])
    assert validate.parameters(run, {}, []) is run
