"""Request checking: every field with a documented limit, turned into the model or refused.

Each function either returns model values that satisfy every limit below or raises
`InvalidInput` whose ``field`` (and message) name the offending request field; none of
them touches the store, so a refused request has changed nothing. The limits are the
API's contract (docs/api.md keeps the same table).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any
from uuid import UUID

from cronhive.api._generated.cronhive.v1 import cronhive_pb2 as pb
from cronhive.blobs.scripts import check_digest, check_interpreter
from cronhive.model import (
    Concurrency,
    JobSpec,
    Misfire,
    RetryPolicy,
    RunLimits,
    RunSpec,
    RunState,
    ScriptRef,
    SqlSpec,
    Stream,
)
from cronhive.notify._rules import normalize
from cronhive.schedule import Schedule, kind_of, parse_schedule
from cronhive.service import cursors
from cronhive.service.limits import (
    KIB,
    MAX_ARG_BYTES,
    MAX_ARGS,
    MAX_COMMAND_BYTES,
    MAX_ENV,
    MAX_ENV_NAME,
    MAX_ENV_VALUE_BYTES,
    parameters,
)
from cronhive.service.limits import bad as _bad
from cronhive.service.limits import command as _command
from cronhive.service.limits import env as _env
from cronhive.service.limits import utf8_len as _utf8_len

__all__ = [
    "LIMITS",
    "decode_token",
    "encode_token",
    "enum_value",
    "job_spec",
    "name",
    "page_size",
    "parameters",
    "run_spec",
    "run_states",
    "stream_choice",
    "uuid_of",
]

DAY = 86_400.0

MAX_NAME = 100
MAX_CWD_BYTES = 4 * KIB
MAX_DESCRIPTION = 2 * KIB
MAX_TIMEOUT = 7 * DAY
MAX_RETRIES = 100
MAX_RETRY_DELAY = DAY
MAX_BACKOFF = 10.0
MAX_RETRY_MAX_DELAY = 7 * DAY
MAX_MISFIRE_GRACE = 7 * DAY
MAX_TAGS = 32
MAX_OUTPUT_CAP = 1024 * KIB * KIB  # 1 GiB
MAX_SCHEDULE_TEXT = 1 * KIB
MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 100
MAX_SQL_BYTES = 256 * KIB
MAX_SQL_NAME_BYTES = 63  # PostgreSQL's identifier length (NAMEDATALEN - 1)
# A run's own limits: (lowest, highest). Below the lowest not even the sandbox starts.
LIMIT_RANGES: Mapping[str, tuple[int, int]] = {
    "memory_bytes": (16 * KIB * KIB, 1 << 40),  # 16 MiB - 1 TiB
    "processes": (1, 1_000_000),
    "open_files": (16, 1 << 20),  # the kernel's default nr_open
    "cpu_seconds": (1, int(7 * DAY)),
    "cpu_weight": (1, 10_000),  # cgroup v2 cpu.weight
}

_NAME_RE = re.compile(r"[A-Za-z0-9_.-]{1,100}")
_TAG_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:=-]{0,62}")

# field -> limit in words; docs/api.md renders the same table.
LIMITS: Mapping[str, str] = {
    "name": f"1-{MAX_NAME} characters of A-Z a-z 0-9 _ . -",
    "command": (
        f"1-{MAX_ARGS} arguments, each at most {MAX_ARG_BYTES} bytes, "
        f"{MAX_COMMAND_BYTES} bytes in all, no NUL; the first not empty"
    ),
    "env": (
        f"at most {MAX_ENV} variables; names [A-Za-z_][A-Za-z0-9_]* up to {MAX_ENV_NAME}; "
        f"values at most {MAX_ENV_VALUE_BYTES} bytes, no NUL"
    ),
    "cwd": f"empty or an absolute path of at most {MAX_CWD_BYTES} bytes, no NUL",
    "description": f"at most {MAX_DESCRIPTION} characters, no NUL",
    "timeout_seconds": f"absent, or 0 < t <= {MAX_TIMEOUT:g} (7 days)",
    "retry.max_retries": f"0-{MAX_RETRIES}",
    "retry.delay_seconds": f"0 (= 10) or 0 < d <= {MAX_RETRY_DELAY:g}",
    "retry.backoff": f"0 (= 2) or 1 <= b <= {MAX_BACKOFF:g}",
    "retry.max_delay_seconds": f"0 (= 3600) or delay <= m <= {MAX_RETRY_MAX_DELAY:g}",
    "misfire_grace_seconds": f"0 (= 300) or 0 < g <= {MAX_MISFIRE_GRACE:g}",
    "target_tags": f"at most {MAX_TAGS}, each [A-Za-z0-9][A-Za-z0-9_.:=-]{{0,62}}",
    "output_cap_bytes": f"absent, or 1-{MAX_OUTPUT_CAP} (1 GiB)",
    "limits": (
        "each absent, or memory_bytes 16 MiB-1 TiB, processes 1-1000000, open_files "
        "16-1048576, cpu_seconds 1-604800, cpu_weight 1-10000; none for SQL jobs"
    ),
    "schedule": f"expression at most {MAX_SCHEDULE_TEXT} characters; kind cron|interval|once",
    "page_size": f"0 (= {DEFAULT_PAGE_SIZE}) or 1-{MAX_PAGE_SIZE}",
    "sql.statement": (
        f"1-{MAX_SQL_BYTES} bytes, no NUL; with sql set, command, shell, env, cwd and "
        "run_as stay empty"
    ),
    "sql.database": "a database of the node configuration ([databases.NAME])",
    "sql.role": f"1-{MAX_SQL_NAME_BYTES} bytes, no NUL (a PostgreSQL role name, case kept)",
    "ids": "UUID strings (job and execution ids)",
}


def uuid_of(text: str, *, field: str = "id") -> UUID:
    """A UUID from its string form; InvalidInput naming `field` otherwise."""
    if not text or len(text) > 64:
        raise _bad(field, "must be a UUID")
    try:
        return UUID(text)
    except ValueError:
        raise _bad(field, f"{text[:40]!r} is not a UUID") from None


def page_size(size: int) -> int:
    """0 means the default (100); otherwise 1..1000."""
    if size == 0:
        return DEFAULT_PAGE_SIZE
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise _bad("page_size", f"must be 0 (default) or 1-{MAX_PAGE_SIZE}, got {size}")
    return size


def encode_token(values: list[Any]) -> str:
    """An opaque page token (the keyset position of the last row sent)."""
    return cursors.encode([str(v) for v in values])


def decode_token(token: str, arity: int) -> list[Any] | None:
    """The values of a token made by `encode_token`, None for "", InvalidInput if bad."""
    return cursors.decode(token, arity, "page_token") if token else None


def name(text: str) -> str:
    if not _NAME_RE.fullmatch(text):
        raise _bad("name", f"must be {LIMITS['name']}")
    return text


def enum_value(cls: type[Any], text: str, field: str, default: Any) -> Any:
    """`cls(text)` for a StrEnum, `default` for "", InvalidInput naming the choices."""
    if text == "":
        return default
    try:
        return cls(text)
    except ValueError:
        choices = ", ".join(m.value for m in cls)
        raise _bad(field, f"unknown value {text[:40]!r}; use one of: {choices}") from None


def run_states(values: Iterable[str]) -> frozenset[RunState] | None:
    states = frozenset(enum_value(RunState, v, "states", None) for v in values)
    if None in states:
        raise _bad("states", "empty state name")
    return states or None


def stream_choice(text: str) -> frozenset[Stream]:
    """ "" = both streams."""
    if text == "":
        return frozenset(Stream)
    return frozenset({enum_value(Stream, text, "stream", None)})


def _cwd(cwd: str) -> str | None:
    if cwd == "":
        return None
    if not cwd.startswith("/") or "\x00" in cwd or _utf8_len(cwd) > MAX_CWD_BYTES:
        raise _bad("cwd", LIMITS["cwd"])
    return cwd


def _seconds(value: float, field: str, *, low: float, high: float, default: float) -> float:
    """0 = `default`; otherwise low <= value <= high (low exclusive when it is 0)."""
    if value == 0:
        return default
    ok = math.isfinite(value) and (value > low if low == 0 else value >= low) and value <= high
    if not ok:
        raise _bad(field, f"must be 0 (default {default:g}) or within {low:g}..{high:g}")
    return float(value)


def _timeout(has: bool, value: float) -> float | None:
    if not has:
        return None
    if not (math.isfinite(value) and 0 < value <= MAX_TIMEOUT):
        raise _bad("timeout_seconds", f"must be absent or 0 < t <= {MAX_TIMEOUT:g}")
    return float(value)


def _tags(tags: Iterable[str]) -> frozenset[str]:
    items = list(tags)
    if len(items) > MAX_TAGS:
        raise _bad("target_tags", f"at most {MAX_TAGS} tags, got {len(items)}")
    for tag in items:
        if not _TAG_RE.fullmatch(tag):
            raise _bad("target_tags", f"bad tag {tag[:40]!r}")
    return frozenset(items)


def _output_cap(has: bool, value: int) -> int | None:
    if not has:
        return None
    if not 1 <= value <= MAX_OUTPUT_CAP:
        raise _bad("output_cap_bytes", f"must be absent or 1-{MAX_OUTPUT_CAP}")
    return value


def _limits(msg: pb.Job | pb.StartRunRequest) -> RunLimits | None:
    """The run's own limits, each within `LIMIT_RANGES`; None when none is set."""
    if not msg.HasField("limits"):
        return None
    given: dict[str, int] = {}
    for key, (low, high) in LIMIT_RANGES.items():
        if msg.limits.HasField(key):  # type: ignore[arg-type]
            value = getattr(msg.limits, key)
            if not low <= value <= high:
                raise _bad(f"limits.{key}", f"must be absent or {low}-{high}, got {value}")
            given[key] = value
    return RunLimits(**given) if given else None


def _run_as(text: str) -> str | None:
    return text or None  # checked against the policy by auth.check_run_as


def _sql(msg: pb.SqlSpec) -> SqlSpec:
    text = msg.statement
    if not text.strip() or "\x00" in text or _utf8_len(text) > MAX_SQL_BYTES:
        raise _bad("sql.statement", LIMITS["sql.statement"])
    for key, value in (("sql.database", msg.database), ("sql.role", msg.role)):
        if not value or "\x00" in value or _utf8_len(value) > MAX_SQL_NAME_BYTES:
            raise _bad(key, f"must be 1-{MAX_SQL_NAME_BYTES} bytes, no NUL")
    return SqlSpec(statement=text, database=msg.database, role=msg.role, autocommit=msg.autocommit)


def _sql_run(msg: pb.Job | pb.StartRunRequest) -> RunSpec:
    """A SQL run: the process fields must be left empty (they mean nothing here)."""
    for key in ("command", "shell", "env", "cwd", "run_as"):
        if getattr(msg, key):
            raise _bad(key, "must be empty for a SQL job (sql is set)")
    if _limits(msg) is not None:
        raise _bad("limits", "a SQL job runs in its database, which process limits do not reach")
    return RunSpec(
        command=(),
        timeout=_timeout(msg.HasField("timeout_seconds"), msg.timeout_seconds),
        target_tags=_tags(msg.target_tags),
        output_cap=_output_cap(msg.HasField("output_cap_bytes"), msg.output_cap_bytes),
        sql=_sql(msg.sql),
    )


def run_spec(msg: pb.Job | pb.StartRunRequest) -> RunSpec:
    """What to run, from a job or an ad-hoc start (the same fields in both), checked
    against every limit (run_as and a SQL role are left to the policy)."""
    if msg.HasField("sql"):
        if msg.HasField("script"):
            raise _bad("script", "a SQL job runs no script (give sql or script, not both)")
        return _sql_run(msg)
    script = _script(msg)
    if script is not None and msg.shell:
        raise _bad("shell", "a script runs with its interpreter, not with shell")
    return RunSpec(
        command=_command(msg.command, script=script is not None),
        shell=msg.shell,
        env=_env(msg.env),
        cwd=_cwd(msg.cwd),
        timeout=_timeout(msg.HasField("timeout_seconds"), msg.timeout_seconds),
        run_as=_run_as(msg.run_as),
        target_tags=_tags(msg.target_tags),
        output_cap=_output_cap(msg.HasField("output_cap_bytes"), msg.output_cap_bytes),
        script=script,
        limits=_limits(msg),
    )


def _script(msg: pb.Job | pb.StartRunRequest) -> ScriptRef | None:
    """The script reference (its digest and interpreter; whether the caller may use it
    is the service's check). Name and size are filled in from the stored record."""
    if not msg.HasField("script"):
        return None
    return ScriptRef(
        digest=check_digest(msg.script.digest, field="script.digest"),
        interpreter=check_interpreter(list(msg.script.interpreter)),
    )


def _schedule(msg: pb.Job) -> Schedule | None:
    if not msg.HasField("schedule"):
        return None
    s = msg.schedule
    if len(s.expression) > MAX_SCHEDULE_TEXT:
        raise _bad("schedule", f"expression longer than {MAX_SCHEDULE_TEXT} characters")
    if not s.expression.strip():
        raise _bad("schedule", "expression must not be empty")
    kind = s.kind or kind_of(s.expression).value
    return parse_schedule(
        kind,
        s.expression,
        timezone=s.timezone or "UTC",
        dst_repeated=s.dst_repeated or "auto",
        dst_skipped=s.dst_skipped or "auto",
        seed=msg.name,
    )


def _retry(msg: pb.Job) -> RetryPolicy:
    if not msg.HasField("retry"):
        return RetryPolicy()
    r = msg.retry
    defaults = RetryPolicy()
    if r.max_retries > MAX_RETRIES:
        raise _bad("retry.max_retries", f"must be 0-{MAX_RETRIES}, got {r.max_retries}")
    delay = _seconds(
        r.delay_seconds, "retry.delay_seconds", low=0, high=MAX_RETRY_DELAY, default=defaults.delay
    )
    backoff = _seconds(
        r.backoff, "retry.backoff", low=1, high=MAX_BACKOFF, default=defaults.backoff
    )
    max_delay = _seconds(
        r.max_delay_seconds,
        "retry.max_delay_seconds",
        low=delay,
        high=MAX_RETRY_MAX_DELAY,
        default=max(defaults.max_delay, delay),
    )
    return RetryPolicy(max_retries=r.max_retries, delay=delay, backoff=backoff, max_delay=max_delay)


def job_spec(msg: pb.Job, *, owner: str) -> JobSpec:
    """The spec fields of `msg` as a JobSpec owned by `owner` (already resolved and
    checked by the caller). Output-only fields are ignored."""
    if len(msg.description) > MAX_DESCRIPTION or "\x00" in msg.description:
        raise _bad("description", LIMITS["description"])
    return JobSpec(
        name=name(msg.name),
        owner=owner,
        run=run_spec(msg),
        schedule=_schedule(msg),
        enabled=msg.enabled,
        retry=_retry(msg),
        concurrency=enum_value(Concurrency, msg.concurrency, "concurrency", Concurrency.ALLOW),
        misfire=enum_value(Misfire, msg.misfire, "misfire", Misfire.ONCE),
        misfire_grace=_seconds(
            msg.misfire_grace_seconds,
            "misfire_grace_seconds",
            low=0,
            high=MAX_MISFIRE_GRACE,
            default=300.0,
        ),
        description=msg.description,
        notify=normalize({r.event: list(r.targets) for r in msg.notify}),
    )


def instant_of(text: str, field: str) -> datetime:
    """An ISO 8601 instant from a page token."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise _bad(field, "not a token this server issued") from None
    if value.tzinfo is None:
        raise _bad(field, "not a token this server issued")
    return value
