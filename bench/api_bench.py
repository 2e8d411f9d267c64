"""API latency and output streaming, over mutual TLS 1.3, against a real node process.

    .venv/bin/python bench/api_bench.py [--rate 300] [--seconds 10] [--mib 256]

Starts `cronhive server` (SQLite, dev certificates) in a temporary folder and measures,
from this process as a client:
1. GetStatus latency at a fixed request rate (open loop: latency counts from the planned
   send time, so a stalled server cannot hide its queue), p50/p99/max;
2. StreamOutput throughput (MB/s) of a finished run's output read from byte 0.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cronhive.api._generated.cronhive.v1 import cronhive_pb2 as pb
from cronhive.api.client import Client, connect


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def wait_ready(server: str, certs: Path, proc: subprocess.Popen[bytes]) -> Client:
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            raise SystemExit("the node exited; see its log")
        try:
            client = await connect(server, certs)
            await client.nodes.List(pb.ListNodesRequest())
            return client
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def get_status_latency(
    client: Client, run_id: str, rate: float, seconds: float
) -> list[float]:
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    start = loop.time() + 0.1
    n = int(rate * seconds)

    async def one(planned: float) -> None:
        await asyncio.sleep(max(0.0, planned - loop.time()))
        await client.runs.GetStatus(pb.GetStatusRequest(id=run_id))
        latencies.append(loop.time() - planned)

    await asyncio.gather(*(one(start + i / rate) for i in range(n)))
    return latencies


async def stream_throughput(client: Client, mib: int) -> tuple[float, int]:
    started = await client.runs.Start(
        pb.StartRunRequest(
            command=["head", "-c", str(mib * 1024 * 1024), "/dev/zero"],
            output_cap_bytes=(mib + 1) * 1024 * 1024,
        )
    )
    while (await client.runs.GetStatus(pb.GetStatusRequest(id=started.id))).state in (
        "queued",
        "running",
    ):
        await asyncio.sleep(0.1)
    t0 = time.perf_counter()
    received = 0
    async with client.runs.StreamOutput.open() as call:
        await call.send_message(pb.StreamOutputRequest(id=started.id), end=True)
        async for chunk in call:
            received += len(chunk.data)
    return time.perf_counter() - t0, received


async def main(rate: float, seconds: float, mib: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        server = f"127.0.0.1:{port}"
        log = Path(tmp) / "node.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "cronhive",
                    "server",
                    "--data-dir",
                    tmp,
                    "--listen",
                    server,
                    "--web",
                    f"127.0.0.1:{free_port()}",
                    "--log-level",
                    "warning",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            client = await wait_ready(server, Path(tmp) / "certs", proc)
            run = await client.runs.Start(pb.StartRunRequest(command=["true"]))
            await get_status_latency(client, run.id, rate, 1.0)  # warm-up
            lat = sorted(await get_status_latency(client, run.id, rate, seconds))
            elapsed, received = await stream_throughput(client, mib)
            client.close()
        finally:
            proc.terminate()
            proc.wait(30)
    ms = [x * 1000 for x in lat]
    p99 = ms[int(len(ms) * 0.99) - 1]
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    print(f"GetStatus at {rate:.0f} req/s for {seconds:.0f} s ({len(ms)} calls, mTLS 1.3):")
    print(f"  p50 {statistics.median(ms):.2f} ms   p99 {p99:.2f} ms   max {ms[-1]:.2f} ms")
    mb = received / 1e6
    print(
        f"StreamOutput of a finished run: {mb:.0f} MB in {elapsed:.2f} s = {mb / elapsed:.0f} MB/s"
    )
    assert received == mib * 1024 * 1024, f"received {received} bytes, wanted {mib} MiB"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=300.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--mib", type=int, default=256)
    args = parser.parse_args()
    asyncio.run(main(args.rate, args.seconds, args.mib))
