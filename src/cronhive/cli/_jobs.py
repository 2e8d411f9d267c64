"""Job verbs: add, edit, rm, ls, show, history, pause, resume, trigger.

Jobs are addressed by name (your own), `group:G/NAME` / `user:U/NAME`, or id (see
_jobspec). Reading verbs take --json.
"""

from __future__ import annotations

import re
import sys
from typing import Any

import click
from google.protobuf.field_mask_pb2 import FieldMask

from cronhive.api._generated.cronhive.v1 import cronhive_pb2 as pb
from cronhive.api.client import Client
from cronhive.cli._app import EXIT_USAGE, cli, fail
from cronhive.cli._connect import Target, call, caller_name
from cronhive.cli._flags import env_pairs
from cronhive.cli._jobspec import apply_options, find_job, job_options, owner_and_name
from cronhive.cli._limits import limit_flags, limits_text
from cronhive.cli._output import (
    describe_schedule,
    echo_json,
    execution_dict,
    fields,
    job_dict,
    paint,
    table,
    when,
)
from cronhive.cli._runs import print_or_follow
from cronhive.cli._runsview import watching
from cronhive.cli._scripts import attach_script
from cronhive.errors import InvalidInput, NotFound
from cronhive.model import command_line

__all__ = ["list_jobs"]

_JOB_ID = re.compile(r"[0-9a-fA-F]{8}-?([0-9a-fA-F]{4}-?){3}[0-9a-fA-F]{12}")
_json = click.option("--json", "as_json", is_flag=True, help="JSON with stable keys.")


def _options(flags: dict[str, Any], command: tuple[str, ...]) -> dict[str, Any]:
    limits = limit_flags(flags)
    opts: dict[str, Any] = {k: v for k, v in flags.items() if k not in ("tags", "env")}
    opts["limits"] = limits
    opts["tags"] = list(flags["tags"]) or None
    opts["notify"] = list(flags["notify"]) or None
    opts["env"] = env_pairs(flags["env"]) or None
    opts["command"] = list(command) or None
    return opts


async def _script(client: Client, job: pb.Job, opts: dict[str, Any]) -> set[str]:
    try:
        return await attach_script(client, job, opts)
    except InvalidInput as exc:
        key = (exc.field or "").replace("_", "-")
        message = str(exc).removeprefix(f"{exc.field}: ")
        fail(f"--{key}: {message}" if key in ("script", "interpreter") else message, EXIT_USAGE)


def _apply(job: pb.Job, opts: dict[str, Any]) -> set[str]:
    try:
        return apply_options(job, opts)
    except InvalidInput as exc:
        key = (exc.field or "").replace("_", "-")
        message = str(exc).removeprefix(f"{exc.field}: ")
        fail(f"--{key}: {message}" if key else message, EXIT_USAGE)


@cli.command()
@click.argument("name")
@job_options
@_json
@click.argument("command", nargs=-1)
@click.pass_context
def add(
    ctx: click.Context, /, name: str, command: tuple[str, ...], as_json: bool, **flags: Any
) -> None:
    """Add job NAME running CMD (a stored --script, or SQL) on a schedule (or only when
    triggered, without one).

    \b
    cronhive add backup --cron '0 3 * * *' --tz Europe/Berlin -- /usr/local/bin/backup.sh
    cronhive add poll --every 5m --timeout 1m -- curl -fsS https://example.org/
    cronhive add report --cron @daily --script report.py
    cronhive add vacuum --cron '0 3 * * *' --sql 'VACUUM big' --database wh --role etl --autocommit
    """
    given = [flags.get(k) for k in ("script", "sql", "sql_file")]
    if not command and all(v is None for v in given):
        fail("give a command after --, --script PATH or --sql/--sql-file", EXIT_USAGE)
    job = pb.Job(name=name, enabled=True)
    opts = _options(flags, command)
    _apply(job, opts)

    async def body(client: Client, _: Target) -> pb.Job:
        await _script(client, job, opts)
        return await client.jobs.Create(pb.CreateJobRequest(job=job))

    created = call(ctx, body)
    _warn(created.warning)
    if as_json:
        echo_json(job_dict(created))
    else:
        click.echo(f"added {created.name} ({created.id}): {_schedule_words(created)}")


def _warn(warning: str) -> None:
    if warning:
        click.echo(f"cronhive: warning: {warning}", err=True)


@cli.command()
@click.argument("ref", metavar="NAME")
@job_options
@_json
@click.argument("command", nargs=-1)
@click.pass_context
def edit(
    ctx: click.Context, /, ref: str, command: tuple[str, ...], as_json: bool, **flags: Any
) -> None:
    """Change job NAME: only the given flags change (--tag and --env replace the lists;
    a CMD after `--` replaces the command)."""
    opts = _options(flags, command)

    async def body(client: Client, target: Target) -> pb.Job:
        job = await find_job(client, ref, caller_name(target))
        paths = _apply(job, opts) | await _script(client, job, opts)
        if not paths:
            fail("nothing to change: give at least one flag or a command", EXIT_USAGE)
        request = pb.UpdateJobRequest(job=job, update_mask=FieldMask(paths=sorted(paths)))
        return await client.jobs.Update(request)

    job = call(ctx, body)
    _warn(job.warning)
    if as_json:
        echo_json(job_dict(job))
    else:
        click.echo(f"updated {job.name}: {_schedule_words(job)}")


@cli.command()
@click.argument("ref", metavar="NAME")
@click.pass_context
def rm(ctx: click.Context, ref: str) -> None:
    """Delete job NAME (its run history stays)."""

    async def body(client: Client, target: Target) -> pb.Job:
        job = await find_job(client, ref, caller_name(target))
        await client.jobs.Delete(pb.DeleteJobRequest(id=job.id))
        return job

    click.echo(f"deleted {call(ctx, body).name}")


async def list_jobs(client: Client, owner: str = "") -> list[pb.Job]:
    """Every job the caller may see (of `owner` if given), across pages."""
    jobs: list[pb.Job] = []
    token = ""
    while True:
        reply = await client.jobs.List(
            pb.ListJobsRequest(owner=owner, page_size=1000, page_token=token)
        )
        jobs.extend(reply.jobs)
        token = reply.next_page_token
        if not token:
            return jobs


def _schedule_words(job: pb.Job) -> str:
    if not job.HasField("schedule"):
        return "only when triggered"
    return describe_schedule(job.schedule, job.name)


def _owner_label(job: pb.Job, me: str) -> str:
    return "" if job.owner == f"user:{me}" else f"{job.owner}/"


@cli.command("ls")
@_json
@click.option("-w", "--watch", is_flag=True, help="Refresh until Ctrl-C.")
@click.option("--interval", type=click.FloatRange(0.2, 3600), default=2.0, show_default=True)
@click.pass_context
def ls(ctx: click.Context, as_json: bool, watch: bool, interval: float) -> None:
    """List the jobs you may see: schedule in words, next run, last state, counts."""

    async def body(client: Client, target: Target) -> None:
        me = caller_name(target)

        async def render() -> None:
            _print_jobs(await list_jobs(client), me, as_json)

        await watching(render, watch=watch, interval=interval)()

    call(ctx, body)


def _print_jobs(jobs: list[pb.Job], me: str, as_json: bool) -> None:
    if as_json:
        echo_json([job_dict(j) for j in jobs])
        return
    rows = []
    for job in jobs:
        d = job_dict(job)
        last = job.last_state or "-"
        rows.append(
            [
                _owner_label(job, me) + job.name,
                _schedule_words(job),
                "quarantined"
                if job.quarantine
                else (when(d["next_fire_at"]) if job.enabled else "paused"),
                paint(last, last),
                str(job.success_count),
                str(job.failure_count),
            ]
        )
    table(["NAME", "SCHEDULE", "NEXT RUN", "LAST", "OK", "FAILED"], rows)


@cli.command()
@click.argument("ref", metavar="NAME")
@_json
@click.option("--script", "body_only", is_flag=True, help="Print the job's script body.")
@click.pass_context
def show(ctx: click.Context, ref: str, as_json: bool, body_only: bool) -> None:
    """Show every field of job NAME (or, with --script, the script it runs)."""

    async def body(client: Client, target: Target) -> pb.Job:
        return await find_job(client, ref, caller_name(target))

    async def script(client: Client, target: Target) -> bytes:
        job = await find_job(client, ref, caller_name(target))
        if not job.HasField("script"):
            fail(f"{job.name} runs a command, not a stored script", EXIT_USAGE)
        reply = await client.scripts.GetScript(pb.GetScriptRequest(digest=job.script.digest))
        return reply.body

    if body_only:
        sys.stdout.buffer.write(call(ctx, script))
        sys.stdout.buffer.flush()
        return
    job = call(ctx, body)
    d = job_dict(job)
    if as_json:
        echo_json(d)
        return
    command = command_line(job.command, job.shell)
    if job.HasField("sql"):
        mode = "autocommit" if job.sql.autocommit else "one transaction"
        command = f"SQL on {job.sql.database} as {job.sql.role} ({mode}): {job.sql.statement}"
    timeout = d["timeout_seconds"]
    fields(
        {
            "name": job.name,
            "id": job.id,
            "owner": job.owner,
            "command": command,
            **(
                {
                    "script": f"{job.script.name} (sha256 {job.script.digest[:16]}, "
                    f"{job.script.size} bytes), run with {' '.join(job.script.interpreter)}"
                }
                if job.HasField("script")
                else {}
            ),
            "schedule": _schedule_words(job)
            + (f"  [{job.schedule.kind} {job.schedule.expression}]" if d["schedule"] else ""),
            "enabled": "yes" if job.enabled else "no (paused)",
            "next run": f"none: quarantined ({job.quarantine})"
            if job.quarantine
            else when(d["next_fire_at"]),
            "last run": f"{when(d['last_run_at'])} {paint(job.last_state, job.last_state)}",
            "succeeded": str(job.success_count),
            "failed": str(job.failure_count),
            "timeout": f"{timeout:g}s" if timeout is not None else "none",
            "retries": f"{job.retry.max_retries} (first after {job.retry.delay_seconds:g}s)",
            "concurrency": job.concurrency,
            "misfire": job.misfire,
            "tags": ", ".join(job.target_tags) or "-",
            "env": " ".join(f"{k}={v}" for k, v in d["env"].items()) or "-",
            "cwd": job.cwd or "-",
            "run as": job.run_as or "-",
            "limits": limits_text(job) or "the node's",
            "description": job.description or "-",
            "notify": "  ".join(f"{r.event}={','.join(r.targets)}" for r in job.notify) or "-",
        }
    )


@cli.command()
@click.argument("ref", metavar="NAME")
@click.option("-n", "count", type=click.IntRange(1, 1000), default=20, show_default=True)
@_json
@click.pass_context
def history(ctx: click.Context, ref: str, count: int, as_json: bool) -> None:
    """The last N runs of job NAME, newest first."""

    async def body(client: Client, target: Target) -> list[pb.Execution]:
        me = caller_name(target)
        try:
            job = await find_job(client, ref, me)
        except NotFound:
            # A deleted job's history stays: its runs keep the job's name and owner.
            if _JOB_ID.fullmatch(ref):
                request = pb.ListExecutionsRequest(job_id=ref, page_size=count)
            else:
                owner, name = owner_and_name(ref, me)
                request = pb.ListExecutionsRequest(job_name=name, owner=owner, page_size=count)
            runs = list((await client.runs.ListExecutions(request)).executions)
            if not runs:
                raise
            click.echo(f"cronhive: {ref} was deleted; its runs:", err=True)
            return runs
        reply = await client.runs.ListExecutions(
            pb.ListExecutionsRequest(job_id=job.id, page_size=count)
        )
        return list(reply.executions)

    runs = call(ctx, body)
    if as_json:
        echo_json([execution_dict(e) for e in runs])
        return
    rows = []
    for e in runs:
        d = execution_dict(e)
        exit_ = "-" if d["exit_code"] is None else str(d["exit_code"])
        if d["signal"] is not None:
            exit_ = f"signal {d['signal']}"
        rows.append(
            [
                e.id,
                paint(e.state, e.state),
                exit_,
                str(e.attempt),
                e.node_name or "-",
                when(d["scheduled_for"]),
                when(d["finished_at"]),
            ]
        )
    table(["RUN", "STATE", "EXIT", "TRY", "NODE", "SCHEDULED", "FINISHED"], rows)


def _toggle(ctx: click.Context, ref: str, enable: bool) -> None:
    async def body(client: Client, target: Target) -> pb.Job:
        job = await find_job(client, ref, caller_name(target))
        if enable:
            return await client.jobs.Resume(pb.ResumeJobRequest(id=job.id))
        return await client.jobs.Pause(pb.PauseJobRequest(id=job.id))

    job = call(ctx, body)
    click.echo(f"{job.name} {'resumed' if enable else 'paused'}")


@cli.command()
@click.argument("ref", metavar="NAME")
@click.pass_context
def pause(ctx: click.Context, ref: str) -> None:
    """Stop job NAME from firing until resumed (runs in progress go on)."""
    _toggle(ctx, ref, False)


@cli.command()
@click.argument("ref", metavar="NAME")
@click.pass_context
def resume(ctx: click.Context, ref: str) -> None:
    """Let job NAME fire again, from now on (missed slots are not made up)."""
    _toggle(ctx, ref, True)


@cli.command()
@click.argument("ref", metavar="NAME")
@click.option("-f", "--follow", is_flag=True, help="Stream its output; exit with its exit code.")
@click.option("--env", "env", multiple=True, metavar="K=V", help="Set for this run (repeatable).")
@click.argument("args", nargs=-1)
@click.pass_context
def trigger(
    ctx: click.Context, ref: str, follow: bool, env: tuple[str, ...], args: tuple[str, ...]
) -> None:
    """Run job NAME once now, outside its schedule; print the run id. ARGS after `--` go
    after the job's command (a shell job's script gets them as $1, $2, ...); --env
    overrides its environment; both for this run only, recorded on it.

    \b
    cronhive trigger -f backup --env MODE=full -- --verbose /srv/extra
    """
    request = pb.TriggerJobRequest(env=env_pairs(env), args=list(args))

    async def body(client: Client, target: Target) -> int:
        job = await find_job(client, ref, caller_name(target))
        request.id = job.id
        execution = await client.jobs.Trigger(request)
        return await print_or_follow(client, execution, follow)

    sys.exit(call(ctx, body))
