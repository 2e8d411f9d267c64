"""A real S3-protocol server for tests: moto's standalone server as a subprocess."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from cronhive.blobs.s3 import S3Settings

ACCESS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
REGION = "us-east-1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class MotoServer:
    """`moto_server` on a free port; `stop()` and `start()` again on the same port (moto
    keeps objects in memory: a restart starts empty, with the bucket made again)."""

    def __init__(self, log_dir: Path, bucket: str = "cronhive") -> None:
        self.port = free_port()
        self.bucket = bucket
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._log = log_dir / f"moto-{self.port}.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        argv = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)]
        with self._log.open("ab") as log:
            self._proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            try:
                request = urllib.request.Request(f"{self.endpoint}/{self.bucket}", method="PUT")
                urllib.request.urlopen(request, timeout=5).close()
                return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline or self._proc.poll() is not None:
                    raise RuntimeError(
                        f"moto did not start: {self._log.read_text()[-2000:]}"
                    ) from None
                time.sleep(0.2)

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None

    def object_keys(self) -> list[str]:
        """Every key in the bucket (through the S3 protocol, not our client)."""
        with urllib.request.urlopen(f"{self.endpoint}/{self.bucket}?list-type=2") as r:
            text = r.read().decode()
        return [part.split("</Key>")[0] for part in text.split("<Key>")[1:]]


def s3_settings(moto: MotoServer, prefix: str) -> S3Settings:
    return S3Settings(
        bucket=moto.bucket,
        endpoint=moto.endpoint,
        prefix=prefix,
        region=REGION,
        access_key_id=ACCESS["AWS_ACCESS_KEY_ID"],
        secret_access_key=ACCESS["AWS_SECRET_ACCESS_KEY"],
        timeout=5.0,
        retries=0,
    )
