"""Job verbs: add, edit, rm, ls, show, history, pause, resume, trigger.

Jobs are addressed by name (your own), `group:G/NAME` / `user:U/NAME`, or id (see
_jobspec). Reading verbs take --json.
"""

from __future__ import annotations

import sys
from typing import Any

import click
from google.protobuf.field_mask_pb2 import FieldMask

from cronhive.api._generated.cronhive.v1 import cronhive_pb2 as pb
from cronhive.api.client import Client
from cronhive.cli._app import EXIT_USAGE, cli, fail
from cronhive.cli._connect import Target, call, caller_name
from cronhive.cli._flags import env_pairs
from cronhive.cli._jobspec import apply_options, find_job, job_options
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
from cronhive.errors import InvalidInput

__all__ = ["list_jobs"]

_json = click.option("--json", "as_json", is_flag=True, help="JSON with stable keys.")


def _options(flags: dict[str, Any], command: tuple[str, ...]) -> dict[str, Any]:
    opts: dict[str, Any] = {k: v for k, v in flags.items() if k not in ("tags", "env")}
    opts["tags"] = list(flags["tags"]) or None
    opts["notify"] = list(flags["notify"]) or None
    opts["env"] = env_pairs(flags["env"]) or None
    opts["command"] = list(command) or None
    return opts


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
@click.argument("command", nargs=-1)
@click.pass_context
def add(ctx: click.Context, /, name: str, command: tuple[str, ...], **flags: Any) -> None:
    """Add job NAME running CMD (or SQL) on a schedule (or only when triggered).

    \b
    cronhive add backup --cron '0 3 * * *' --tz Europe/Berlin -- /usr/local/bin/backup.sh
    cronhive add poll --every 5m --timeout 1m -- curl -fsS https://example.org/
    cronhive add vacuum --cron '0 3 * * *' --sql 'VACUUM big' --database wh --role etl --autocommit
    """
    if not command and flags.get("sql") is None and flags.get("sql_file") is None:
        fail("give a command after -- or --sql/--sql-file", EXIT_USAGE)
    job = pb.Job(name=name, enabled=True)
    _apply(job, _options(flags, command))

    async def body(client: Client, _: Target) -> pb.Job:
        return await client.jobs.Create(pb.CreateJobRequest(job=job))

    created = call(ctx, body)
    click.echo(f"added {created.name} ({created.id}): {_schedule_words(created)}")


@cli.command()
@click.argument("ref", metavar="NAME")
@job_options
@click.argument("command", nargs=-1)
@click.pass_context
def edit(ctx: click.Context, /, ref: str, command: tuple[str, ...], **flags: Any) -> None:
    """Change job NAME: only the given flags change (--tag and --env replace the lists;
    a CMD after `--` replaces the command)."""
    opts = _options(flags, command)

    async def body(client: Client, target: Target) -> pb.Job:
        job = await find_job(client, ref, caller_name(target))
        paths = _apply(job, opts)
        if not paths:
            fail("nothing to change: give at least one flag or a command", EXIT_USAGE)
        request = pb.UpdateJobRequest(job=job, update_mask=FieldMask(paths=sorted(paths)))
        return await client.jobs.Update(request)

    job = call(ctx, body)
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
@click.pass_context
def ls(ctx: click.Context, as_json: bool) -> None:
    """List the jobs you may see: schedule in words, next run, last state, counts."""

    async def body(client: Client, target: Target) -> tuple[list[pb.Job], str]:
        return await list_jobs(client), caller_name(target)

    jobs, me = call(ctx, body)
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
@click.pass_context
def show(ctx: click.Context, ref: str, as_json: bool) -> None:
    """Show every field of job NAME."""

    async def body(client: Client, target: Target) -> pb.Job:
        return await find_job(client, ref, caller_name(target))

    job = call(ctx, body)
    d = job_dict(job)
    if as_json:
        echo_json(d)
        return
    command = " ".join(job.command) if not job.shell else f"sh -c {job.command[0]!r}"
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
        job = await find_job(client, ref, caller_name(target))
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
@click.pass_context
def trigger(ctx: click.Context, ref: str, follow: bool) -> None:
    """Run job NAME once now, outside its schedule; print the run id."""

    async def body(client: Client, target: Target) -> int:
        job = await find_job(client, ref, caller_name(target))
        execution = await client.jobs.Trigger(pb.TriggerJobRequest(id=job.id))
        return await print_or_follow(client, execution.id, follow)

    sys.exit(call(ctx, body))
