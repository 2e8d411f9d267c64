"""The metrics listener of a real node: /metrics parsed by prometheus_client's own parser,
counters moving as runs end; /healthz; /readyz turning unready when the database goes."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from _shared.proxy import TcpProxy
from clikit import free_port, running_node
from prometheus_client.parser import text_string_to_metric_families


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _samples(base: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    status, text = _get(f"{base}/metrics")
    assert status == 200, text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _finished(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], state: str) -> float:
    return sum(
        v
        for (name, labels), v in samples.items()
        if name == "cronhive_runs_finished_total" and ("state", state) in labels
    )


def test_metrics_move_as_runs_end(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with running_node(tmp_path / "data", extra=["--metrics", f"127.0.0.1:{port}"]) as cli:
        before = _samples(base)
        assert _finished(before, "succeeded") == 0
        assert before[("cronhive_lease_held", frozenset())] == 1
        cli.ok("run", "-f", "--", "sh", "-c", "printf 12345")
        cli.ok("run", "-f", "--", "true")
        assert cli("run", "-f", "--", "false").returncode == 1
        after = _samples(base)
        assert _finished(after, "succeeded") == 2
        assert _finished(after, "failed") == 1
        adhoc = ("cronhive_runs_finished_total", frozenset(
            {("state", "succeeded"), ("owner_class", "user"), ("kind", "adhoc")}
        ))  # fmt: skip
        assert after[adhoc] == 2
        assert after[("cronhive_output_bytes_total", frozenset({("stream", "stdout")}))] == 5
        assert after[("cronhive_runs_started_total", frozenset(
            {("owner_class", "user"), ("kind", "adhoc")}
        ))] == 3  # fmt: skip
        assert after[("cronhive_start_lag_seconds_count", frozenset())] == 3
        deadline = time.monotonic() + 20  # a renewal every third of the 5 s lease
        while _samples(base)[("cronhive_lease_renewals_total", frozenset())] < 1:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        finishes = [
            v
            for (name, labels), v in after.items()
            if name == "cronhive_db_call_seconds_count" and ("op", "finish_many") in labels
        ]
        assert finishes and finishes[0] >= 1
        # A scheduled job: its first attempts are fire-lag samples, ended as "scheduled".
        cli.ok("add", "every-second", "--every", "1s", "--", "true")
        deadline = time.monotonic() + 30
        while True:
            samples = _samples(base)
            fired = samples.get(("cronhive_fire_lag_seconds_count", frozenset()), 0)
            ended = sum(
                v
                for (name, labels), v in samples.items()
                if name == "cronhive_runs_finished_total" and ("kind", "scheduled") in labels
            )
            if fired >= 2 and ended >= 2:
                break
            assert time.monotonic() < deadline, (fired, ended)
            time.sleep(0.2)
        cli.ok("pause", "every-second")
        assert _get(f"{base}/healthz")[0] == 200
        status, body = _get(f"{base}/readyz")
        assert status == 200, body
        assert json.loads(body)["ready"] is True


@pytest.mark.postgres
def test_readyz_unready_when_the_database_is_unreachable(
    pg_database: Callable[[str | None], str], tmp_path: Path
) -> None:
    url = urlsplit(pg_database(None))
    proxy = TcpProxy(url.port or 5432)
    through = urlunsplit(url._replace(netloc=f"{url.username}@127.0.0.1:{proxy.port}"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with running_node(
        tmp_path / "data", db=through, extra=["--metrics", f"127.0.0.1:{port}"]
    ) as cli:
        cli.ok("run", "-f", "--", "true")
        assert _get(f"{base}/readyz")[0] == 200
        proxy.cut()
        deadline = time.monotonic() + 30
        while True:
            status, body = _get(f"{base}/readyz")
            if status == 503:
                break
            assert time.monotonic() < deadline, body
            time.sleep(0.2)
        checks = json.loads(body)
        assert checks["ready"] is False
        assert checks["database"] is False
        # The process is alive all along: liveness is not readiness.
        assert _get(f"{base}/healthz")[0] == 200
        errors = [
            v for (name, _), v in _samples(base).items() if name == "cronhive_db_call_errors_total"
        ]
        assert sum(errors) >= 1
