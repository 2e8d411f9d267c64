"""The output archive on real nodes: a 256 MiB run leaves the database for the blob
store and reads back identically from any offset, a follower attached before the end
reads every byte once, and an S3 outage while a run ends loses nothing."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from blobkit import Cli, running_node, s3_flags
from s3kit import MotoServer

from cronhive.api._generated.cronhive.v1 import cronhive_pb2 as pb
from cronhive.api.client import Client, connect

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(600)]

MIB = 1 << 20
TOTAL = 256 * MIB
MIDDLE = 100 * MIB + 12345
# Writes TOTAL random bytes (after a pause, so a follower can attach before the end),
# then on stderr the SHA-256 of everything and of everything from MIDDLE on.
BIG = f"""
import hashlib, os, sys, time
time.sleep(2)
whole, tail, at = hashlib.sha256(), hashlib.sha256(), 0
for _ in range({TOTAL // MIB}):
    block = os.urandom({MIB})
    whole.update(block)
    cut = max(0, {MIDDLE} - at)
    if cut < len(block):
        tail.update(block[cut:])
    at += len(block)
    sys.stdout.buffer.write(block)
sys.stdout.flush()
print(whole.hexdigest(), tail.hexdigest(), file=sys.stderr)
"""


def _chunk_rows(url: str, execution_id: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM output_chunks WHERE execution_id = %s", (execution_id,)
        ).fetchone()
        assert row is not None
        return int(row[0])


def _archived(url: str, execution_id: str) -> bool:
    with psycopg.connect(url) as conn:
        found = conn.execute(
            "SELECT 1 FROM output_archives WHERE execution_id = %s", (execution_id,)
        ).fetchone()
    return found is not None


def _wait(what: Callable[[], bool], seconds: float, why: str) -> None:
    deadline = time.monotonic() + seconds
    while not what():
        assert time.monotonic() < deadline, why
        time.sleep(0.2)


async def _close(client: Client) -> None:
    await client.aclose()


async def _stream(
    cli: Cli,
    execution_id: str,
    *,
    stdout_offset: int = 0,
    follow: bool = False,
    pause_after: int | None = None,
    pause: Callable[[], None] | None = None,
) -> tuple[str, int]:
    """SHA-256 and length of stdout through gRPC StreamOutput, checking every chunk
    starts where the one before ended (no gap, no repeat); optionally pausing once
    (the server's sends wait meanwhile) after `pause_after` bytes."""
    client = await connect(cli.server, cli.certs)
    digest, at = hashlib.sha256(), stdout_offset
    paused = False
    try:
        async with client.runs.StreamOutput.open() as stream:
            request = pb.StreamOutputRequest(
                id=execution_id, stream="stdout", stdout_offset=stdout_offset, follow=follow
            )
            await stream.send_message(request, end=True)
            async for chunk in stream:
                assert chunk.offset == at, (chunk.offset, at)
                digest.update(chunk.data)
                at += len(chunk.data)
                if pause is not None and not paused and at >= (pause_after or 0):
                    paused = True
                    await asyncio.to_thread(pause)
    finally:
        await _close(client)
    return digest.hexdigest(), at - stdout_offset


def test_a_256_mib_run_is_archived_and_reads_back_from_any_offset(
    pg_database: Callable[[str | None], str], moto: MotoServer, tmp_path: Path
) -> None:
    url = pg_database(None)
    config = tmp_path / "node.toml"
    config.write_text(f"output_cap = {300 * MIB}\n")
    flags = [*s3_flags(moto, f"a-{uuid.uuid4().hex[:8]}"), "--config", str(config)]
    with running_node(tmp_path / "n1", db=url, extra=flags) as cli:
        run_id = cli.ok("run", "--", "python3", "-c", BIG).strip()

        # Attached before the end: reads from the table while the run writes, is held
        # (by not reading) until the run is archived and its chunks are gone, then reads
        # on from the archive.
        def until_archived() -> None:
            _wait(lambda: _archived(url, run_id), 300, "the run was not archived")
            assert _chunk_rows(url, run_id) == 0

        followed = asyncio.run(
            _stream(cli, run_id, follow=True, pause_after=8 * MIB, pause=until_archived)
        )
        status = json.loads(cli.ok("status", run_id, "--json"))
        assert status["state"] == "succeeded", status
        whole, tail = cli("logs", "--stderr", run_id).stderr.split()  # to the CLI's stderr
        assert followed == (whole, TOTAL)
        assert _chunk_rows(url, run_id) == 0

        assert hashlib.sha256(cli.raw("logs", "--stdout", run_id, timeout=300)).hexdigest() == whole
        assert asyncio.run(_stream(cli, run_id)) == (whole, TOTAL)
        assert asyncio.run(_stream(cli, run_id, stdout_offset=MIDDLE)) == (tail, TOTAL - MIDDLE)
        stored = [k for k in moto.object_keys() if run_id in k]
        assert len(stored) == 2  # stdout and stderr objects


def test_an_s3_outage_while_a_run_ends_loses_nothing(
    pg_database: Callable[[str | None], str], tmp_path: Path
) -> None:
    url = pg_database(None)
    moto = MotoServer(tmp_path)  # our own: this test stops it
    moto.start()
    try:
        flags = s3_flags(moto, "outage")
        with running_node(tmp_path / "n1", db=url, extra=flags) as cli:
            script = "for i in $(seq 1 2000); do echo line $i; done; sleep 3; echo last"
            run_id = cli.ok("run", "--shell", "--", script).strip()
            expected = "".join(f"line {i}\n" for i in range(1, 2001)) + "last\n"

            async def follow() -> str:
                client = await connect(cli.server, cli.certs)
                try:
                    chunks = await client.runs.StreamOutput(
                        pb.StreamOutputRequest(id=run_id, follow=True)
                    )
                finally:
                    await _close(client)
                return b"".join(c.data for c in chunks).decode()

            async def scenario() -> str:
                follower = asyncio.create_task(follow())
                await asyncio.sleep(0.5)
                moto.stop()  # down while the run ends
                return await follower

            assert asyncio.run(scenario()) == expected
            assert json.loads(cli.ok("status", run_id, "--json"))["state"] == "succeeded"
            time.sleep(2)  # the archiver tried and failed meanwhile
            assert _chunk_rows(url, run_id) > 0
            assert not _archived(url, run_id)
            assert cli.ok("logs", run_id) == expected  # from the database
            assert "archiving the output of" in cli.log.read_text()

            moto.start()  # back (empty: moto keeps nothing across a restart)
            _wait(lambda: _archived(url, run_id), 90, "archiving was not retried")
            assert _chunk_rows(url, run_id) == 0
            assert cli.ok("logs", run_id) == expected  # from the archive
            assert any(run_id in k for k in moto.object_keys())
    finally:
        moto.stop()


def test_a_local_archive_is_refused_while_nodes_share_the_database(
    pg_database: Callable[[str | None], str], tmp_path: Path
) -> None:
    url = pg_database(None)
    with (
        running_node(tmp_path / "n1", db=url, extra=["--name", "n1"]) as one,
        running_node(tmp_path / "n2", db=url, certs=one.certs, extra=["--name", "n2"]),
    ):
        run_id = one.ok("run", "--", "echo", "kept in the database").strip()
        assert one.ok("logs", "-f", run_id, timeout=90) == "kept in the database\n"
        logs = (tmp_path / "n1").parent
        _wait(
            lambda: (
                "other nodes share this database"
                in "".join(p.read_text() for p in logs.glob("node-*.log"))
            ),
            30,
            "no node said why it does not archive",
        )
        assert _chunk_rows(url, run_id) > 0
        assert not _archived(url, run_id)
        assert one.ok("logs", run_id) == "kept in the database\n"
