"""A real `cronhive server` process on the default settings, and the CLI against it.

The security tests attack a node as a tenant would: through ordinary runs started with
the `cronhive` command, on a node started exactly as an operator would start it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

PYTHON = sys.executable
# The default policy, and admin's jobs may run as the OS users `daemon` and `root`.
GRANT_POLICY = """
[defaults]
roles = ["scheduler"]
[users.admin]
roles = ["admin"]
run_as = ["daemon", "root"]
[groups.admins]
roles = ["admin"]
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clean_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRONHIVE_")}
    env["HOME"] = str(home)
    return env


@dataclass(frozen=True, kw_only=True)
class Node:
    """A running node: its process, its data dir, and `cli(...)` to talk to it."""

    proc: subprocess.Popen[bytes]
    data_dir: Path
    server: str
    web: str
    home: Path

    @property
    def certs(self) -> Path:
        return self.data_dir / "certs"

    def cli(
        self, *args: str, cert: str = "admin", timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        argv = [PYTHON, "-m", "cronhive", "--server", self.server, "--certs", str(self.certs)]
        return subprocess.run(
            [*argv, "--as", cert, *args],
            capture_output=True,
            text=True,
            env=clean_env(self.home),
            cwd=self.home,
            timeout=timeout,
            check=False,
        )

    def ok(self, *args: str, cert: str = "admin") -> str:
        done = self.cli(*args, cert=cert)
        assert done.returncode == 0, (args, done.returncode, done.stdout, done.stderr)
        return done.stdout

    def log(self) -> str:
        return (self.home / "node.log").read_text()[-4000:]


@contextmanager
def running_node(data_dir: Path, extra: Sequence[str] = ()) -> Iterator[Node]:
    """`cronhive server --data-dir DATA_DIR` (plus `extra`) on free ports, until it serves."""
    port, web = free_port(), free_port()
    home = data_dir.parent
    argv = [
        PYTHON, "-m", "cronhive", "server", "--data-dir", str(data_dir),
        "--listen", f"127.0.0.1:{port}", "--web", f"127.0.0.1:{web}", *extra,
    ]  # fmt: skip
    with (home / "node.log").open("wb") as log:
        proc = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, env=clean_env(home), cwd=home
        )
    node = Node(proc=proc, data_dir=data_dir, server=f"127.0.0.1:{port}", web=f"127.0.0.1:{web}",
                home=home)  # fmt: skip
    try:
        done = node.cli("nodes", "--wait", "30")
        if done.returncode != 0:
            raise RuntimeError(f"node did not start: {done.stderr}\n{node.log()}")
        yield node
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_for_file(path: Path, within: float = 20) -> None:
    deadline = time.monotonic() + within
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


@contextmanager
def host_dir() -> Iterator[Path]:
    """A world-traversable folder outside /tmp (every sandbox has its own /tmp), so what
    keeps a run out of a node in it is the sandbox's hiding and the file modes."""
    base = Path("/var/lib") if os.geteuid() == 0 else Path.home() / ".cache"
    base.mkdir(parents=True, exist_ok=True)
    d = Path(tempfile.mkdtemp(prefix="cronhive-sec-", dir=base))
    os.chmod(d, 0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)
