"""`runs` with its filters and --watch, `events` (backlog and -f), `ls --watch`: against the
shared real node, as subprocesses."""

from __future__ import annotations

import json
import queue
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from clikit import Cli, clean_env


@contextmanager
def _streaming(cli: Cli, *args: str) -> Iterator[queue.Queue[str]]:
    """A long-running command whose stdout lines arrive on a queue; killed after."""
    proc = subprocess.Popen(
        cli.argv(*args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(cli.home),
        cwd=cli.home,
    )
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        yield lines
    finally:
        proc.kill()
        proc.wait(timeout=10)
        reader.join(timeout=10)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


def _until(lines: queue.Queue[str], wanted: str, timeout: float = 20) -> list[str]:
    """Lines read until one containing `wanted` (bounded wait)."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        assert left > 0, f"{wanted!r} not seen in {seen}"
        try:
            line = lines.get(timeout=left)
        except queue.Empty:
            continue
        seen.append(line)
        if wanted in line:
            return seen


def test_runs_json_lists_an_adhoc_run_and_filters(cli: Cli) -> None:
    good = cli.ok("run", "--", "true").strip()
    cli.ok("logs", "-f", good)
    bad = cli.ok("run", "--", "false").strip()
    cli.ok("logs", "-f", bad)

    listed = json.loads(cli.ok("runs", "--json"))
    by_id = {r["id"]: r for r in listed}
    assert by_id[good]["job_name"] is None
    assert by_id[good]["state"] == "succeeded"
    assert [r["queued_at"] for r in listed] == sorted(
        (r["queued_at"] for r in listed), reverse=True
    )

    failed = json.loads(cli.ok("runs", "--state", "failed", "--json"))
    assert bad in {r["id"] for r in failed}
    assert good not in {r["id"] for r in failed}

    node = by_id[good]["node_name"]
    assert node
    on_node = json.loads(cli.ok("runs", "--node", node, "--json"))
    assert {good, bad} <= {r["id"] for r in on_node}
    assert json.loads(cli.ok("runs", "--node", "no-such-node", "--json")) == []

    assert {good, bad} <= {r["id"] for r in json.loads(cli.ok("runs", "--since", "1h", "--json"))}
    future = json.loads(cli.ok("runs", "--since", "2999-01-01T00:00:00+00:00", "--json"))
    assert future == []

    mine = json.loads(cli.ok("runs", "--owner", "user:admin", "--json"))
    assert good in {r["id"] for r in mine}
    assert json.loads(cli.ok("runs", "--owner", "user:nobody-else", "--json")) == []

    cli.ok("add", "runsview-job", "--", "sh", "-c", "exit 0")
    cli.ok("trigger", "-f", "runsview-job")
    of_job = json.loads(cli.ok("runs", "--job", "runsview-job", "--json"))
    assert [r["job_name"] for r in of_job] == ["runsview-job"]

    table = cli.ok("runs", "-n", "5")
    assert table.splitlines()[0].split() == [
        "RUN", "JOB", "STATE", "EXIT", "TRY", "NODE", "QUEUED", "FINISHED"
    ]  # fmt: skip


def test_runs_watch_redraws_with_new_runs(cli: Cli) -> None:
    with _streaming(cli, "runs", "--watch", "--interval", "0.3", "-n", "5") as lines:
        _until(lines, "every 0.3s")
        run_id = cli.ok("run", "--", "true").strip()
        _until(lines, run_id)


def test_events_backlog_ends_and_follow_goes_on(cli: Cli) -> None:
    run_id = cli.ok("run", "--", "true").strip()
    cli.ok("logs", "-f", run_id)
    done = cli("events", "--json", timeout=20)  # ends by itself: the backlog only
    assert done.returncode == 0, done.stderr
    kinds = {
        e["kind"] for e in map(json.loads, done.stdout.splitlines()) if e["execution_id"] == run_id
    }
    assert {"run.queued", "run.finished"} <= kinds
    last = max(e["id"] for e in map(json.loads, done.stdout.splitlines()))

    with _streaming(cli, "events", "-f", "--json", "--after", str(last)) as lines:
        second = cli.ok("run", "--", "true").strip()
        seen = [json.loads(line) for line in _until(lines, second)]
        assert all(e["id"] > last for e in seen)


def test_ls_watch_redraws(cli: Cli) -> None:
    with _streaming(cli, "ls", "--watch", "--interval", "0.3") as lines:
        _until(lines, "every 0.3s")
        cli.ok("add", "ls-watch-job", "--every", "1h", "--", "true")
        _until(lines, "ls-watch-job")
