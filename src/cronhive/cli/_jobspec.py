"""Job fields from flags or an apply file, written onto a `pb.Job`, and job addressing.

One vocabulary for both: the keys of `apply_options` are the long flag names of `add`
with `_` for `-` (`retry_delay`, `run_as`, ...), so a jobs.toml entry reads like the
command line that would create it.

Addressing: a UUID is a job id; `user:NAME/JOB` or `group:NAME/JOB` is that owner's job;
a bare `JOB` is the caller's own (owner `user:<CN of the client certificate>`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar
from uuid import UUID

import click

from cronhive.api._generated.cronhive.v1 import cronhive_pb2 as pb
from cronhive.api.client import Client
from cronhive.cli._flags import parse_size
from cronhive.cli._limits import limit_options, set_limits
from cronhive.errors import InvalidInput, NotFound
from cronhive.notify._rules import normalize, parse_notify_flags
from cronhive.schedule import parse_duration

__all__ = [
    "KEYS",
    "SQL_KEYS",
    "apply_options",
    "find_job",
    "job_options",
    "owner_and_name",
    "sql_options",
]

F = TypeVar("F", bound=Callable[..., Any])
KEYS = frozenset(
    {
        "command", "shell", "cron", "every", "offset", "at", "tz", "dst_repeated", "dst_skipped",
        "timeout", "retries", "retry_delay", "concurrency", "misfire", "tags", "env", "cwd",
        "run_as", "group", "description", "enabled", "script", "interpreter",
        "retry_backoff", "retry_max_delay", "output_cap", "notify", "limits",
        "sql", "sql_file", "database", "role", "autocommit",
    }
)  # fmt: skip
SQL_KEYS = ("sql", "sql_file", "database", "role", "autocommit")
_OWNER_REF = re.compile(r"(user|group):([A-Za-z0-9._@-]{1,64})/(.+)")


def _bad(key: str, message: str) -> InvalidInput:
    return InvalidInput(f"{key}: {message}", field=key)


def _duration(value: Any, key: str) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value <= 0:
            raise _bad(key, "must be greater than zero")
        return float(value)
    if not isinstance(value, str):
        raise _bad(key, "expected a duration like 90s, 5m, 1h30m")
    return parse_duration(value, field=key).total_seconds()


def _ratio(value: Any, key: str) -> float:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise _bad(key, "expected a number like 2 or 1.5") from None
    if not isinstance(value, int | float) or isinstance(value, bool) or value < 1:
        raise _bad(key, "expected a number >= 1")
    return float(value)


def _offset(value: Any, period: int) -> str:
    """The phase of an interval: a duration shorter than the period, 0 (aligned to the
    epoch), or H (picked by the job's name: the default, so a fleet spreads out)."""
    if value is None or (isinstance(value, str) and value.strip().upper() == "H"):
        return "H"
    if value == 0 or (isinstance(value, str) and value.strip() == "0"):
        return "0"
    seconds = int(_duration(value, "offset"))
    if seconds >= period:
        raise _bad("offset", "must be shorter than the interval")
    return str(seconds)


def _text(value: Any, key: str) -> str:
    if not isinstance(value, str):
        raise _bad(key, "expected a string")
    return value


def _schedule(job: pb.Job, opts: Mapping[str, Any]) -> bool:
    given = [k for k in ("cron", "every", "at") if opts.get(k) is not None]
    if len(given) > 1:
        raise _bad(given[1], f"give only one of cron, every, at (got {' and '.join(given)})")
    if opts.get("offset") is not None and given != ["every"]:
        raise _bad("offset", "goes with every (a phase of the interval)")
    extra = [k for k in ("tz", "dst_repeated", "dst_skipped") if opts.get(k) is not None]
    if not given and not extra:
        return False
    if given:
        key = given[0]
        text = _text(opts[key], key).strip()
        if key == "every":
            job.schedule.kind = "interval"
            period = int(_duration(text, "every"))
            job.schedule.expression = f"{period} offset {_offset(opts.get('offset'), period)}"
        else:
            job.schedule.kind = "cron" if key == "cron" else "once"
            job.schedule.expression = text
    elif not job.HasField("schedule"):
        raise _bad(extra[0], "needs a schedule (cron, every or at)")
    if opts.get("tz") is not None:
        job.schedule.timezone = _text(opts["tz"], "tz")
    for key in ("dst_repeated", "dst_skipped"):
        if opts.get(key) is not None:
            setattr(job.schedule, key, _text(opts[key], key))
    return True


def _command(job: pb.Job, opts: Mapping[str, Any], paths: set[str]) -> None:
    if opts.get("shell") is not None:
        job.shell = bool(opts["shell"])
        paths.add("shell")
    command = opts.get("command")
    if command is None:
        return
    if isinstance(command, str):
        argv = [command]
        if opts.get("shell") is None:  # a string in a file is a script
            job.shell = True
            paths.add("shell")
    elif isinstance(command, list | tuple) and all(isinstance(a, str) for a in command):
        argv = [" ".join(command)] if job.shell else list(command)
    else:
        raise _bad("command", "expected a list of strings or one script string")
    del job.command[:]
    job.command.extend(argv)
    paths.add("command")
    if job.HasField("sql"):  # a command replaces the job's SQL
        job.ClearField("sql")
        paths.add("sql")


def _sql(job: pb.Job, opts: Mapping[str, Any], paths: set[str]) -> None:
    """--sql TEXT | --sql-file PATH with --database, --role, --autocommit."""
    if all(opts.get(k) is None for k in SQL_KEYS):
        return
    if opts.get("sql") is not None and opts.get("sql_file") is not None:
        raise _bad("sql_file", "give only one of sql and sql_file")
    if opts.get("command") is not None:
        raise _bad("sql", "give a command or SQL, not both")
    if opts.get("sql") is not None:
        job.sql.statement = _text(opts["sql"], "sql")
    elif opts.get("sql_file") is not None:
        path = _text(opts["sql_file"], "sql_file")
        try:
            with open(path, encoding="utf-8") as f:
                job.sql.statement = f.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise _bad("sql_file", f"cannot read {path}: {exc}") from None
    elif not job.HasField("sql"):
        raise _bad("database", "needs sql or sql_file (a SQL job)")
    for key in ("database", "role"):
        if opts.get(key) is not None:
            setattr(job.sql, key, _text(opts[key], key))
    if opts.get("autocommit") is not None:
        job.sql.autocommit = bool(opts["autocommit"])
    for key in ("database", "role"):
        if not getattr(job.sql, key):
            raise _bad(key, "a SQL job needs one")
    paths.add("sql")
    if job.command or job.shell:  # SQL replaces the job's command
        del job.command[:]
        job.shell = False
        paths.update({"command", "shell"})


def apply_options(job: pb.Job, opts: Mapping[str, Any]) -> set[str]:
    """Writes the given options (None = not given) onto `job`; returns the Job field paths
    changed (an update mask). Raises InvalidInput naming the key for bad syntax."""
    unknown = sorted(set(opts) - KEYS)
    if unknown:
        raise _bad(unknown[0], f"unknown key; known: {', '.join(sorted(KEYS))}")
    paths: set[str] = set()
    _command(job, opts, paths)
    _sql(job, opts, paths)
    if _schedule(job, opts):
        paths.add("schedule")
    if opts.get("timeout") is not None:
        job.timeout_seconds = _duration(opts["timeout"], "timeout")
        paths.add("timeout_seconds")
    if opts.get("retries") is not None:
        retries = opts["retries"]
        if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
            raise _bad("retries", "expected a whole number >= 0")
        job.retry.max_retries = retries
        paths.add("retry")
    if opts.get("retry_delay") is not None:
        job.retry.delay_seconds = _duration(opts["retry_delay"], "retry_delay")
        paths.add("retry")
    if opts.get("retry_backoff") is not None:
        job.retry.backoff = _ratio(opts["retry_backoff"], "retry_backoff")
        paths.add("retry")
    if opts.get("retry_max_delay") is not None:
        job.retry.max_delay_seconds = _duration(opts["retry_max_delay"], "retry_max_delay")
        paths.add("retry")
    if opts.get("output_cap") is not None:
        job.output_cap_bytes = parse_size(opts["output_cap"], "output_cap")
        paths.add("output_cap_bytes")
    for key in ("concurrency", "misfire", "cwd", "run_as", "description"):
        if opts.get(key) is not None:
            setattr(job, key, _text(opts[key], key))
            paths.add(key)
    if opts.get("tags") is not None:
        tags = opts["tags"]
        if not isinstance(tags, list | tuple) or not all(isinstance(t, str) for t in tags):
            raise _bad("tags", "expected a list of strings")
        del job.target_tags[:]
        job.target_tags.extend(sorted(set(tags)))
        paths.add("target_tags")
    if opts.get("env") is not None:
        env = opts["env"]
        if not isinstance(env, Mapping) or not all(isinstance(v, str) for v in env.values()):
            raise _bad("env", 'expected NAME = "value" pairs')
        job.env.clear()
        job.env.update(env)
        paths.add("env")
    if opts.get("group") is not None:
        job.owner = f"group:{_text(opts['group'], 'group')}"
        paths.add("owner")
    if opts.get("enabled") is not None:
        job.enabled = bool(opts["enabled"])
        paths.add("enabled")
    if opts.get("notify") is not None:
        _notify(job, opts["notify"])
        paths.add("notify")
    if opts.get("limits") is not None:
        set_limits(job.limits, opts["limits"])
        if not job.limits.ListFields():
            job.ClearField("limits")
        paths.add("limits")
    return paths


def _notify(job: pb.Job, value: Any) -> None:
    """`--notify EVENT=TARGET[,TARGET]` flags (a list; `none` clears them all) or an apply
    file's `notify = { failure = ["ops"], recovery = "ops" }`."""
    if isinstance(value, Mapping):
        rules = normalize(value)
    elif isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        rules = {} if list(value) == ["none"] else parse_notify_flags(value)
    else:
        raise _bad("notify", "expected EVENT=TARGET flags or a table of event = [targets]")
    del job.notify[:]
    for event, targets in sorted(rules.items()):
        job.notify.add(event=event, targets=list(targets))


def owner_and_name(ref: str, me: str) -> tuple[str, str]:
    """(owner, name) of a job reference that is not an id."""
    m = _OWNER_REF.fullmatch(ref)
    if m:
        return f"{m.group(1)}:{m.group(2)}", m.group(3)
    return f"user:{me}", ref


def _is_uuid(text: str) -> bool:
    try:
        UUID(text)
    except ValueError:
        return False
    return True


async def find_job(client: Client, ref: str, me: str) -> pb.Job:
    """The job a reference names (see the module docstring); NotFound if none."""
    if _is_uuid(ref):
        return await client.jobs.Get(pb.GetJobRequest(id=ref))
    owner, name = owner_and_name(ref, me)
    reply = await client.jobs.List(
        pb.ListJobsRequest(owner=owner, name_prefix=name, page_size=1000)
    )
    for job in reply.jobs:
        if job.name == name and job.owner == owner:
            return job
    raise NotFound(f"no such job: {ref}")


def sql_options() -> list[Callable[[F], F]]:
    """The flags of a SQL job (docs/sql-jobs.md), shared by add, edit and run."""
    return [
        click.option("--sql", metavar="TEXT", help="Run this SQL instead of a command."),
        click.option("--sql-file", metavar="PATH", help="Run the SQL in this file."),
        click.option("--database", metavar="NAME", help="SQL: a database of the nodes."),
        click.option("--role", metavar="ROLE", help="SQL: the PostgreSQL role to run as."),
        click.option(
            "--autocommit/--no-autocommit",
            default=None,
            help="SQL: no transaction block (VACUUM) [one transaction].",
        ),
    ]


def job_options(func: F) -> F:
    """The flags `add` and `edit` share (every one optional; None = not given)."""
    options = [
        click.option("--cron", metavar="EXPR", help="Cron expression ('0 3 * * *', @daily)."),
        click.option("--every", metavar="DURATION", help="Fixed interval (90s, 5m, 1h)."),
        click.option(
            "--offset",
            metavar="DURATION|H|0",
            help="With --every: its phase. Default H, a stable pick from the job's name "
            "(spreads a fleet); 0 fires on multiples of the interval since the epoch.",
        ),
        click.option("--at", metavar="TIME", help="Once, at an ISO 8601 time (naive = --tz)."),
        click.option("--tz", metavar="ZONE", help="IANA time zone of the schedule [UTC]."),
        click.option("--timeout", metavar="DURATION", help="Stop a run after this long."),
        click.option("--retries", type=click.IntRange(0, 100), help="Retries of a failed run."),
        click.option("--retry-delay", metavar="DURATION", help="Delay before the first retry."),
        click.option("--concurrency", type=click.Choice(["allow", "forbid", "replace"])),
        click.option("--misfire", type=click.Choice(["once", "all", "skip"])),
        click.option("--dst-repeated", metavar="POLICY", help="Repeated wall time policy."),
        click.option("--dst-skipped", metavar="POLICY", help="Skipped wall time policy."),
        click.option("--tag", "tags", multiple=True, help="Node tag required (repeatable)."),
        click.option("--env", multiple=True, metavar="K=V", help="Environment (repeatable)."),
        click.option("--cwd", help="Working directory on the node (absolute)."),
        click.option("--run-as", metavar="USER", help="OS user (needs a policy grant)."),
        click.option("--group", metavar="G", help="Owned by group G instead of you."),
        click.option("--description", metavar="TEXT"),
        click.option("--shell/--no-shell", default=None, help="Run CMD as one sh script."),
        click.option(
            "--script",
            metavar="PATH",
            help="Upload this script and run it (CMD: its arguments); see docs/blobs.md.",
        ),
        click.option(
            "--interpreter",
            metavar="CMD",
            help="What runs the script (python3, ruby, bash, sh...) [its #! line].",
        ),
        click.option("--retry-backoff", metavar="FACTOR", help="Delay multiplier per retry [2]."),
        click.option("--retry-max-delay", metavar="DURATION", help="Longest retry delay [1h]."),
        click.option("--output-cap", metavar="SIZE", help="Output kept per run (64M, 1G)."),
        click.option(
            "--notify",
            multiple=True,
            metavar="EVENT=TARGET",
            help="Tell a target of the node config on failure, recovery, success, missed "
            "or start (repeatable; TARGET may be a,b; 'none' clears them).",
        ),
        *sql_options(),
    ]
    func = limit_options(func)
    for option in reversed(options):
        func = option(func)
    return func
