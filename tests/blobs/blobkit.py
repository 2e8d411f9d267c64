"""Real `cronhive server` processes with a blob store, and the CLI against them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from s3kit import ACCESS, REGION, MotoServer, free_port

PYTHON = sys.executable


def clean_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CRONHIVE_", "AWS_"))}
    env["HOME"] = str(home)
    return env


def s3_flags(moto: MotoServer, prefix: str) -> list[str]:
    return [
        "--blobs", "s3", "--s3-endpoint", moto.endpoint, "--s3-bucket", moto.bucket,
        "--s3-prefix", prefix, "--s3-region", REGION,
    ]  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class Cli:
    server: str
    certs: Path
    home: Path
    log: Path
    web: str = ""  # https://127.0.0.1:PORT when the node serves the web UI

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

    def __call__(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(*args),
            capture_output=True,
            text=True,
            env=clean_env(self.home),
            cwd=self.home,
            timeout=timeout,
            check=False,
        )

    def ok(self, *args: str, timeout: float = 60) -> str:
        done = self(*args, timeout=timeout)
        assert done.returncode == 0, (args, done.returncode, done.stdout, done.stderr)
        return done.stdout

    def raw(self, *args: str, timeout: float = 120) -> bytes:
        """stdout as bytes of a command that must exit 0."""
        done = subprocess.run(
            self.argv(*args),
            capture_output=True,
            env=clean_env(self.home),
            cwd=self.home,
            timeout=timeout,
            check=False,
        )
        assert done.returncode == 0, (args, done.returncode, done.stderr[-2000:])
        return done.stdout


@contextmanager
def running_node(
    data_dir: Path,
    *,
    db: str | None = None,
    extra: Sequence[str] = (),
    home: Path | None = None,
    certs: Path | None = None,
    web: bool = False,
) -> Iterator[Cli]:
    """`cronhive server` on free ports (S3 credentials in its environment), until SIGTERM."""
    port, web_port = free_port(), free_port()
    home = home or data_dir.parent
    argv = [
        PYTHON, "-m", "cronhive", "server",
        "--data-dir", str(data_dir), "--listen", f"127.0.0.1:{port}",
        "--web", f"127.0.0.1:{web_port}" if web else "off",
        "--log-level", "info",
        *(["--db", db] if db else []),
        *(["--certs", str(certs)] if certs else []),
        *extra,
    ]  # fmt: skip
    log_path = home / f"node-{port}.log"
    env = clean_env(home) | ACCESS
    with log_path.open("w") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
    cli = Cli(
        server=f"127.0.0.1:{port}",
        certs=certs or data_dir / "certs",
        home=home,
        log=log_path,
        web=f"https://127.0.0.1:{web_port}" if web else "",
    )
    try:
        done = cli("nodes", "--wait", "60", timeout=90)
        if done.returncode != 0:
            raise RuntimeError(f"node did not start: {done.stderr}\n{log_path.read_text()[-3000:]}")
        yield cli
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
