"""Runs one SQL job's statement on its target database as its role.

The run's life is the process runner's (`runner.RunHandle`'s): `wait()` gives a
`runner.RunResult`, `stop(grace)` ends it, the output goes to the same `OutputSink` (the
worker's `OutputShipper`), so the worker, the finisher, retries, overlap and history
treat SQL runs and processes alike. What differs:

- The node connects as its own login role (the target's URL), checks the role rule
  (`_access.refusal`), then ``SET ROLE``: the database enforces the role's privileges.
- The job's timeout is ``statement_timeout``; a backstop on the event loop cancels the
  backend if the server has not ended the statement `BACKSTOP` seconds later.
- Stop: ``pg_cancel_backend`` on a second connection, then ``pg_terminate_backend``
  after the grace; the run's connection is closed before `wait()` returns.
- One transaction by default; with ``autocommit`` no transaction block around the text
  (needed for VACUUM, CREATE INDEX CONCURRENTLY; PostgreSQL still runs a text of several
  statements as one implicit transaction).
- Fencing in the target database: each run holds a session advisory lock on its slot
  (job or owner, scheduled time) for as long as its connection lives. A node whose
  lease lapsed cannot be trusted to stop its statement (a frozen process cancels
  nothing), so the next attempt of the slot, on whichever node, terminates the backend
  still holding the lock before it sends anything: the old copy is dead in the database
  before the new one starts there (docs/sql-jobs.md, "Fencing").

Exit codes (docs/sql-jobs.md): 0 success; 1 a statement failed (its SQLSTATE on stderr);
2 the database could not be reached or the connection broke; 3 refused before any
statement ran (unknown database, role not allowed, SET ROLE failed); 4 canceled (the
state says timed_out or stopped).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql as psql

from cronhive import runner
from cronhive.auth.policy import Policy
from cronhive.errors import CronhiveError
from cronhive.model import SqlSpec
from cronhive.sqljobs._access import refusal
from cronhive.sqljobs._format import csv_lines, error_text, notice_line
from cronhive.sqljobs._targets import SqlTarget

__all__ = [
    "EXIT_CANCELED",
    "EXIT_CONNECTION",
    "EXIT_REFUSED",
    "EXIT_SQL_ERROR",
    "ConnectFailed",
    "SqlRun",
    "connect",
]

log = logging.getLogger(__name__)

EXIT_SQL_ERROR = 1
EXIT_CONNECTION = 2
EXIT_REFUSED = 3
EXIT_CANCELED = 4
BACKSTOP = 2.0  # seconds past the timeout before the node cancels the backend itself
FENCE_WAIT = 10.0  # seconds for a stale attempt's backend to go once terminated
CONNECT_TIMEOUT = 10  # seconds
WRITE_BATCH = 64 * 1024  # CSV bytes per chunk handed to the sink
_CANCELED = "57014"  # query_canceled: statement_timeout or pg_cancel_backend


class ConnectFailed(CronhiveError):
    """The target database could not be reached as the login role (the message names
    the database and the cause, never the password)."""


async def connect(target: SqlTarget, application_name: str) -> psycopg.AsyncConnection[Any]:
    """An autocommit connection to `target` as its login role; raises ConnectFailed."""
    try:
        secret = target.connect_args()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConnectFailed(
            f"cannot read the password of database {target.name!r}: {type(exc).__name__}"
        ) from None
    try:
        return await psycopg.AsyncConnection.connect(
            target.url,
            autocommit=True,
            connect_timeout=CONNECT_TIMEOUT,
            application_name=application_name[:63],
            client_encoding="UTF8",
            **secret,
        )
    except psycopg.Error as exc:
        raise ConnectFailed(
            f"cannot connect to database {target.name!r}: {_scrub(str(exc), target)}"
        ) from None


class SqlRun:
    """One SQL run, started at construction (inside a running event loop).

    Like `runner.RunHandle` it has `pid` (None: no process here; fencing by the lease
    goes through the worker's stop), `wait()` and `stop(grace)`."""

    pid: int | None = None

    def __init__(
        self,
        *,
        run_id: str,
        owner: str,
        spec: SqlSpec,
        target: SqlTarget | None,
        policy: Policy,
        timeout: float | None,
        grace: float,
        sink: runner.OutputSink | None,
        output_cap: int | None,
        slot: str | None = None,
    ) -> None:
        self.run_id = run_id
        self._slot = slot
        self._owner = owner
        self._spec = spec
        self._target = target
        self._policy = policy
        self._timeout = timeout
        self._grace = grace
        self._sink = sink
        self._cap = output_cap
        self._offsets = {runner.Stream.STDOUT: 0, runner.Stream.STDERR: 0}
        self._seq = 0
        self._kept = 0  # bytes given to the sink, both streams
        self._capped = False
        self._lock = asyncio.Lock()
        self._notices: list[bytes] = []
        self._notice_wake = asyncio.Event()
        self._backend: int | None = None
        self._stopping = False
        self._timed_out = False
        self.started_at = datetime.now(UTC)
        self._task = asyncio.create_task(self._main(), name=f"sql-{run_id}")

    # --- the handle --------------------------------------------------------------------

    async def wait(self) -> runner.RunResult:
        return await asyncio.shield(self._task)

    async def stop(self, grace: float | None = None) -> runner.RunResult:
        """Cancels the statement, terminates the backend after `grace`, and returns once
        the run has ended."""
        if not self._task.done():
            self._stopping = True
            await self._end_backend(grace if grace is not None else self._grace)
        return await asyncio.shield(self._task)

    async def _end_backend(self, grace: float) -> None:
        await self._signal("pg_cancel_backend")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace):
                await asyncio.shield(self._task)
                return
        await self._signal("pg_terminate_backend")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace):
                await asyncio.shield(self._task)
                return
        self._task.cancel()  # the server does not answer: give the connection up

    async def _signal(self, function: str) -> None:
        """pg_cancel_backend / pg_terminate_backend of the run's backend, on a second
        connection as the same login role (allowed for one's own backends)."""
        backend, target = self._backend, self._target
        if backend is None or target is None:
            return  # not connected yet: _main sees _stopping before it sends anything
        query = psql.SQL("SELECT {}(%s)").format(psql.Identifier(function))
        try:
            async with await connect(target, f"cronhive {function}") as conn:
                await conn.execute(query, (backend,))
        except (ConnectFailed, psycopg.Error) as exc:
            log.warning("%s of run %s failed: %s", function, self.run_id, _scrub(str(exc), target))

    # --- the run -----------------------------------------------------------------------

    async def _main(self) -> runner.RunResult:
        code: int | None
        try:
            state, code, error = await self._run()
        except asyncio.CancelledError:  # given up on: the server answered no cancel
            timed_out = self._timed_out and not self._stopping
            state = runner.RunState.TIMED_OUT if timed_out else runner.RunState.STOPPED
            code, error = EXIT_CANCELED, "the database did not answer"
        except Exception as exc:  # a bug here must end the run, not leave it running
            log.exception("SQL run %s failed inside cronhive", self.run_id)
            state, code, error = runner.RunState.FAILED, None, f"internal error: {exc!r}"
        if self._sink is not None:
            with contextlib.suppress(Exception):
                await self._sink.close()
        return runner.RunResult(
            state=state,
            exit_code=code,
            signal=None,
            error=error,
            started_at=self.started_at,
            finished_at=datetime.now(UTC),
            limits_applied=None,
            stdout_bytes=self._offsets[runner.Stream.STDOUT],
            stderr_bytes=self._offsets[runner.Stream.STDERR],
            output_capped=self._capped,
        )

    async def _run(self) -> tuple[runner.RunState, int, str | None]:
        target, spec = self._target, self._spec
        if target is None:
            return await self._refused(f"database {spec.database!r} is not configured on this node")
        if target.identity != "postgres":  # the policy alone decides: before any login
            why = await refusal(None, target, self._policy, self._owner, spec.role)
            if why is not None:
                return await self._refused(why)
        try:
            conn = await connect(target, f"cronhive run {self.run_id}")
        except ConnectFailed as exc:
            why = str(exc)
            await self._emit(runner.Stream.STDERR, f"cronhive: {why}\n".encode())
            return runner.RunState.FAILED, EXIT_CONNECTION, why
        try:
            self._backend = conn.info.backend_pid
            return await self._session(conn, target)
        finally:
            await conn.close()

    async def _session(
        self, conn: psycopg.AsyncConnection[Any], target: SqlTarget
    ) -> tuple[runner.RunState, int, str | None]:
        spec = self._spec
        try:
            if target.identity == "postgres":  # membership is asked on the login session
                why = await refusal(conn, target, self._policy, self._owner, spec.role)
                if why is not None:
                    return await self._refused(why)
            if self._slot is not None and not await fence_slot(conn, self._slot):
                why = "an earlier attempt of this slot still runs in the database"
                await self._emit(runner.Stream.STDERR, f"cronhive: {why}\n".encode())
                return runner.RunState.FAILED, EXIT_CONNECTION, why
            # From here on the server's messages are the run's (not those of the checks).
            conn.add_notice_handler(self._notice)
            await conn.execute(psql.SQL("SET ROLE {}").format(psql.Identifier(spec.role)))
        except psycopg.Error as exc:
            await self._emit(runner.Stream.STDERR, error_text(exc))
            return await self._refused(
                f"SET ROLE {spec.role} failed on {target.name!r}: {exc.diag.message_primary or exc}"
            )
        if self._stopping:
            return runner.RunState.STOPPED, EXIT_CANCELED, None
        try:
            if self._timeout is not None:
                ms = max(1, int(self._timeout * 1000))
                await conn.execute(psql.SQL("SET statement_timeout = {}").format(psql.Literal(ms)))
            async with self._backstop():
                await self._statement(conn)
        except psycopg.Error as exc:
            return await self._failed(exc, target)
        return runner.RunState.SUCCEEDED, 0, None

    async def _statement(self, conn: psycopg.AsyncConnection[Any]) -> None:
        text = self._spec.statement.encode()
        async with conn.cursor() as cur:
            async with self._live_notices():
                if self._spec.autocommit:
                    await cur.execute(text)
                else:
                    async with conn.transaction():
                        await cur.execute(text)
            last = None
            while True:
                await self._emit(runner.Stream.STDOUT, f"{cur.statusmessage or ''}\n".encode())
                last = cur.pgresult
                if not cur.nextset():
                    break
            if last is not None and last.nfields:
                await self._rows(last)

    async def _rows(self, result: psycopg.pq.abc.PGresult) -> None:
        batch = [b"\n"]
        size = 1
        for line in csv_lines(result):
            batch.append(line)
            size += len(line)
            if size >= WRITE_BATCH:
                await self._emit(runner.Stream.STDOUT, b"".join(batch))
                batch, size = [], 0
                if self._capped:
                    return  # past the cap nothing more is kept: stop formatting
        await self._emit(runner.Stream.STDOUT, b"".join(batch))

    @contextlib.asynccontextmanager
    async def _backstop(self) -> AsyncIterator[None]:
        """Cancels the backend if the server lets the statement outlive its timeout."""
        timeout = self._timeout
        if timeout is None:
            yield
            return

        async def expire() -> None:
            await asyncio.sleep(timeout + BACKSTOP)
            self._timed_out = True
            await self._end_backend(self._grace)

        watch = asyncio.create_task(expire())
        try:
            yield
        finally:
            watch.cancel()

    async def _failed(
        self, exc: psycopg.Error, target: SqlTarget
    ) -> tuple[runner.RunState, int, str | None]:
        await self._flush_notices()
        await self._emit(runner.Stream.STDERR, _scrub(error_text(exc).decode(), target).encode())
        canceled = exc.diag.sqlstate == _CANCELED
        if self._stopping and (canceled or isinstance(exc, psycopg.OperationalError)):
            return runner.RunState.STOPPED, EXIT_CANCELED, None
        if self._timed_out or (canceled and self._timeout is not None):
            return runner.RunState.TIMED_OUT, EXIT_CANCELED, None
        if canceled:
            return runner.RunState.FAILED, EXIT_CANCELED, None
        state = exc.diag.sqlstate
        broken = state is None and isinstance(exc, psycopg.OperationalError)
        if broken or (state is not None and state.startswith(("08", "57P"))):
            return runner.RunState.FAILED, EXIT_CONNECTION, None
        return runner.RunState.FAILED, EXIT_SQL_ERROR, None

    async def _refused(self, why: str) -> tuple[runner.RunState, int, str | None]:
        await self._emit(runner.Stream.STDERR, f"cronhive: refused: {why}\n".encode())
        return runner.RunState.FAILED, EXIT_REFUSED, f"refused: {why}"

    # --- output ------------------------------------------------------------------------

    def _notice(self, diag: psycopg.errors.Diagnostic) -> None:
        self._notices.append(notice_line(diag))
        self._notice_wake.set()

    @contextlib.asynccontextmanager
    async def _live_notices(self) -> AsyncIterator[None]:
        """Writes notices while the statement runs (progress of a long job), and the last
        ones once it returned; the pump is never cancelled mid-write."""
        done = False

        async def pump() -> None:
            while not done:
                await self._notice_wake.wait()
                self._notice_wake.clear()
                await self._flush_notices()

        task = asyncio.create_task(pump())
        try:
            yield
        finally:
            done = True
            self._notice_wake.set()
            await task
            await self._flush_notices()

    async def _flush_notices(self) -> None:
        notices, self._notices = self._notices, []
        if notices:
            await self._emit(runner.Stream.STDOUT, b"".join(notices))

    async def _emit(self, stream: runner.Stream, data: bytes) -> None:
        """Hands `data` to the sink with its offset and seq, within the output cap."""
        if not data:
            return
        async with self._lock:
            offset = self._offsets[stream]
            self._offsets[stream] += len(data)
            if self._cap is not None:
                room = self._cap - self._kept
                if len(data) > room:
                    data, self._capped = data[: max(room, 0)], True
            if not data or self._sink is None:
                return
            self._kept += len(data)
            chunk = runner.Chunk(stream=stream, offset=offset, seq=self._seq, data=data)
            self._seq += 1
            try:
                await self._sink.write(chunk)
            except Exception:
                log.exception("output sink of run %s failed; detached", self.run_id)
                self._sink = None


def slot_lock(slot: str) -> int:
    """The advisory lock key of a slot: 64 bits of its digest, as a signed int8."""
    digest = hashlib.blake2b(b"cronhive slot " + slot.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


# A bigint advisory lock shows in pg_locks as classid = high 32 bits, objid = low 32 bits,
# objsubid = 1. Only cronhive's own run sessions are ever terminated.
_HOLDERS = (
    "SELECT l.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
    " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1"
    " AND l.classid = %s::oid AND l.objid = %s::oid AND l.pid <> pg_backend_pid()"
    " AND a.application_name LIKE 'cronhive run %%'"
)


async def fence_slot(conn: psycopg.AsyncConnection[Any], slot: str) -> bool:
    """Takes the slot's lock for this session, terminating the backend of an earlier
    attempt that still holds it; False if it could not be had within FENCE_WAIT."""
    key = slot_lock(slot)
    unsigned = key & 0xFFFF_FFFF_FFFF_FFFF
    oids = (unsigned >> 32, unsigned & 0xFFFF_FFFF)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + FENCE_WAIT
    terminated: set[int] = set()
    while True:
        row = await (await conn.execute("SELECT pg_try_advisory_lock(%s)", (key,))).fetchone()
        if row and row[0]:
            return True
        holders = await (await conn.execute(_HOLDERS, oids)).fetchall()
        for (pid,) in holders:
            if pid not in terminated:  # once: it holds the lock until it has exited
                log.warning("terminating backend %d of an earlier attempt of slot %s", pid, slot)
                await conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
                terminated.add(pid)
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.05)


def _scrub(text: str, target: SqlTarget) -> str:
    """`text` without the target's password (a driver message never should hold it; this
    makes sure)."""
    try:
        secret = target.password()
    except OSError:
        return text
    return text.replace(secret, "***") if secret else text
