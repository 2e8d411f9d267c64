"""A real node as a subprocess and the `cronhive` command run against it, for CLI tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

PYTHON = sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment without any cronhive setting of the machine running the tests."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRONHIVE_")}
    env.pop("NO_COLOR", None)
    env["HOME"] = str(home)
    env.update(extra)
    return env


@dataclass(frozen=True, kw_only=True)
class Cli:
    """`python -m cronhive --server ... --certs ...` against one node."""

    server: str
    certs: Path
    home: Path

    def argv(self, *args: str) -> list[str]:
        return [
            PYTHON,
            "-m",
            "cronhive",
            "--server",
            self.server,
            "--certs",
            str(self.certs),
            *args,
        ]

    def __call__(
        self,
        *args: str,
        stdin: str | None = None,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        timeout: float = 30,
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(*args),
            input=stdin,
            capture_output=True,
            text=True,
            env=env or clean_env(self.home),
            cwd=cwd or self.home,
            timeout=timeout,
            check=False,
        )

    def ok(self, *args: str, **kw: object) -> str:
        """stdout of a command that must exit 0."""
        done = self(*args, **kw)  # type: ignore[arg-type]
        assert done.returncode == 0, (args, done.returncode, done.stdout, done.stderr)
        return done.stdout


@contextmanager
def running_node(
    data_dir: Path, *, db: str | None = None, extra: Sequence[str] = ()
) -> Iterator[Cli]:
    """Starts `cronhive server` on free ports, waits until it serves, stops it after."""
    port, web = free_port(), free_port()
    argv = [
        PYTHON, "-m", "cronhive", "server",
        "--data-dir", str(data_dir),
        "--listen", f"127.0.0.1:{port}",
        "--web", f"127.0.0.1:{web}",
        "--log-level", "warning",
        *(["--db", db] if db else []),
        *extra,
    ]  # fmt: skip
    home = data_dir.parent
    log = (data_dir.parent / f"node-{port}.log").open("w")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=clean_env(home))
    cli = Cli(server=f"127.0.0.1:{port}", certs=data_dir / "certs", home=home)
    try:
        # The certificates appear once the node has started; nodes --wait retries until then.
        done = subprocess.run(
            [PYTHON, "-m", "cronhive", "--server", cli.server, "--certs", str(cli.certs),
             "nodes", "--wait", "30"],
            capture_output=True, text=True, env=clean_env(home), timeout=60, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"node did not start: {done.stderr}\n{_tail(log.name)}")
        yield cli
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _tail(path: str) -> str:
    return Path(path).read_text()[-2000:]
