"""`cronhive cron next`, in-process through click and once as a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from cronhive.cli import cli

CRONHIVE = Path(sys.executable).parent / "cronhive"


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["cron", "next", *args])
    return result.exit_code, result.stdout, result.stderr


def test_prints_next_times_in_the_schedules_zone() -> None:
    code, out, err = run(
        "30 2 * * *", "--tz", "Europe/Berlin", "--after", "2026-03-28T12:00+01:00", "-n", "3"
    )
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "2026-03-29T03:00:00+02:00",
        "2026-03-30T02:30:00+02:00",
        "2026-03-31T02:30:00+02:00",
    ]


def test_fields_as_separate_words_and_policies() -> None:
    code, out, _ = run(
        "30", "2", "*", "*", "*", "--tz", "Europe/Berlin", "--after", "2026-10-24T12:00",
        "--dst-repeated", "both", "-n", "3",
    )  # fmt: skip
    assert code == 0
    assert out.splitlines() == [
        "2026-10-25T02:30:00+02:00",
        "2026-10-25T02:30:00+01:00",
        "2026-10-26T02:30:00+01:00",
    ]


def test_default_count_is_five_and_default_after_is_now() -> None:
    code, out, _ = run("@hourly")
    assert code == 0
    assert len(out.splitlines()) == 5


@pytest.mark.parametrize(
    ("expr", "first"),
    [
        ("every 5m", "2026-01-01T00:05:00+00:00"),
        ("@daily", "2026-01-02T00:00:00+00:00"),
        ("0 0 9 * * 1#2", "2026-01-12T09:00:00+00:00"),
        ("at 2026-06-01T12:00+02:00", "2026-06-01T10:00:00+00:00"),
    ],
)
def test_every_kind_of_expression(expr: str, first: str) -> None:
    code, out, _ = run(expr, "--after", "2026-01-01T00:01:00Z", "-n", "1")
    assert (code, out) == (0, first + "\n")


def test_once_in_the_past_prints_nothing() -> None:
    assert run("at 2020-01-01T00:00Z", "--after", "2026-01-01T00:00Z") == (0, "", "")


def test_json() -> None:
    code, out, _ = run(
        "every 90s", "--tz", "Europe/Berlin", "--after", "2026-01-01T00:00Z", "-n", "2", "--json"
    )
    assert code == 0
    assert json.loads(out) == {
        "kind": "interval",
        "expression": "every 90s",
        "timezone": "Europe/Berlin",
        "dst_repeated": "auto",
        "dst_skipped": "auto",
        "description": "every 90 seconds",
        "fields": None,
        "after": "2026-01-01T00:00:00+00:00",
        "next": ["2026-01-01T01:01:30+01:00", "2026-01-01T01:03:00+01:00"],
    }


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["61 * * * *"], "EXPR: bad minute field '61'"),
        (["@daily", "--tz", "Mars/Olympus"], "--tz: unknown time zone 'Mars/Olympus'"),
        (["@daily", "--dst-repeated", "twice"], "--dst-repeated: unknown dst_repeated policy"),
        (["@daily", "--dst-skipped", "never"], "--dst-skipped: unknown dst_skipped policy"),
        (["@daily", "--after", "yesterday"], "--after: bad instant 'yesterday'"),
        (["every 0s"], "EXPR: bad interval"),
    ],
)
def test_bad_input_exits_2_with_one_line(args: list[str], words: str) -> None:
    code, out, err = run(*args)
    assert code == 2
    assert out == ""
    assert len(err.splitlines()) == 1
    assert words in err


@pytest.mark.parametrize(
    "args", [["@daily", "-n", "x"], ["@daily", "-n", "0"], [], ["@daily", "--bogus"]]
)
def test_click_usage_errors_exit_2(args: list[str]) -> None:
    code, _, err = run(*args)
    assert code == 2
    assert "Error" in err


def test_real_subprocess() -> None:
    ok = subprocess.run(
        [str(CRONHIVE), "cron", "next", "*/20 2 * * *", "--tz", "Europe/Berlin",
         "--after", "2026-10-25T02:45+02:00", "-n", "2"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert (ok.returncode, ok.stderr) == (0, "")
    assert ok.stdout.splitlines() == ["2026-10-25T02:00:00+01:00", "2026-10-25T02:20:00+01:00"]
    bad = subprocess.run(
        [str(CRONHIVE), "cron", "next", "0 0 * * *", "--tz", "Atlantis/Capital"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert bad.returncode == 2
    assert bad.stdout == ""
    assert bad.stderr == "cronhive: --tz: unknown time zone 'Atlantis/Capital'\n"
