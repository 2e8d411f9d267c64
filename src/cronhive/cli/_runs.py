"""`run`, `status`, `stop`, `logs` (alias `output`): ad-hoc runs and any run's output."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, BinaryIO, TypeVar

import click

from cronhive.api._generated.cronhive.v1 import cronhive_pb2 as pb
from cronhive.api.client import Client
from cronhive.cli._app import EXIT_FAILURE, EXIT_USAGE, cli, fail
from cronhive.cli._connect import Target, call
from cronhive.cli._flags import COMMAND_SETTINGS, env_pairs, seconds, size
from cronhive.cli._jobspec import apply_options, sql_options
from cronhive.cli._limits import limit_flags, limit_options, limits_text, set_limits
from cronhive.cli._output import echo_json, execution_dict, fields, paint, when
from cronhive.errors import InvalidInput
from cronhive.model import command_line

__all__ = ["exit_code_of", "print_or_follow", "stream_output"]

F = TypeVar("F", bound=Callable[..., Any])


def _sql_flags(func: F) -> F:
    for option in reversed(sql_options()):
        func = option(func)
    return func


def _sink(stream: str) -> BinaryIO:
    return (sys.stderr if stream == "stderr" else sys.stdout).buffer


async def stream_output(client: Client, run_id: str, *, stream: str, follow: bool) -> None:
    """Copies the run's output to our stdout/stderr (each chunk to its own stream), from
    byte 0; with `follow`, until the run is terminal and every byte is written."""
    async with client.runs.StreamOutput.open() as call_:
        await call_.send_message(
            pb.StreamOutputRequest(id=run_id, stream=stream, follow=follow), end=True
        )
        async for chunk in call_:
            sink = _sink(chunk.stream)
            sink.write(chunk.data)
            sink.flush()


def exit_code_of(e: pb.Execution) -> int:
    """The run's exit code as a shell would see it: the code, 128+signal, or 1 when the
    process never exited on its own (failed to start, timed out, lost, stopped)."""
    if e.HasField("exit_code") and e.state in ("succeeded", "failed"):
        return e.exit_code
    if e.HasField("signal") and e.state == "failed":
        return 128 + e.signal
    return 0 if e.state == "succeeded" else EXIT_FAILURE


async def print_or_follow(client: Client, execution: pb.Execution, follow: bool) -> int:
    """Without `follow`: prints the run id (for scripts), exit 0. With it: names the run
    on stderr and follows it to its end, exiting with its code. Either way a reason the
    run may wait (no node with its tags) is said on stderr first."""
    run_id = execution.id
    if execution.waiting:
        click.echo(f"cronhive: warning: {execution.waiting}", err=True)
    if not follow:
        click.echo(run_id)
        return 0
    click.echo(f"run {run_id}", err=True)
    return await follow_to_end(client, run_id)


async def follow_to_end(client: Client, run_id: str) -> int:
    """Streams the run's output until it ends, then each retry's (a retry is a new run of
    the same slot, queued in the transaction that ended the last); returns the final
    attempt's exit code (see exit_code_of)."""
    while True:
        await stream_output(client, run_id, stream="", follow=True)
        status = await client.runs.GetStatus(pb.GetStatusRequest(id=run_id))
        if status.state not in ("succeeded", "failed") or status.error:
            why = status.error or status.reason or status.state
            click.echo(f"cronhive: run {run_id} {status.state}: {why}", err=True)
        retry = await next_attempt(client, status) if status.state != "succeeded" else None
        if retry is None:
            return exit_code_of(status)
        wait = ""
        if retry.HasField("not_before"):
            delay = retry.not_before.ToDatetime(tzinfo=UTC) - datetime.now(UTC)
            wait = (
                f" in {max(0.0, delay.total_seconds()):.0f}s" if delay.total_seconds() > 1 else ""
            )
        click.echo(f"cronhive: attempt {retry.attempt} (run {retry.id}) starts{wait}", err=True)
        run_id = retry.id


async def next_attempt(client: Client, ended: pb.Execution) -> pb.Execution | None:
    """The retry of `ended` (same job or ad hoc, same slot, the next attempt), if queued."""
    request = pb.ListExecutionsRequest(job_id=ended.job_id, page_size=100)
    request.since.CopyFrom(ended.queued_at)
    reply = await client.runs.ListExecutions(request)
    for e in reply.executions:
        if (
            e.job_id == ended.job_id
            and e.attempt == ended.attempt + 1
            and e.scheduled_for == ended.scheduled_for
        ):
            return e
    return None


@cli.command(context_settings=COMMAND_SETTINGS)
@click.option("-f", "--follow", is_flag=True, help="Stream its output; exit with its exit code.")
@click.option("--tag", "tags", multiple=True, help="Run only on a node with this tag (repeatable).")
@click.option("--timeout", help="Stop it after this long (90s, 5m, 1h30m).")
@click.option("--env", "env", multiple=True, metavar="K=V", help="Environment (repeatable).")
@click.option("--cwd", help="Working directory on the node (absolute).")
@click.option("--shell", is_flag=True, help="Run CMD as one /bin/sh script.")
@click.option("--output-cap", metavar="SIZE", help="Output kept (64M, 1G) [the node's].")
@limit_options
@_sql_flags
@click.argument("command", nargs=-1)
@click.pass_context
def run(
    ctx: click.Context,
    /,
    follow: bool,
    tags: tuple[str, ...],
    timeout: str | None,
    env: tuple[str, ...],
    cwd: str | None,
    shell: bool,
    output_cap: str | None,
    command: tuple[str, ...],
    **sql: Any,
) -> None:
    """Start CMD (or SQL) now on any node with room; print the run id.

    \b
    cronhive run -- make test
    cronhive run -f -- sh -c 'echo hi; exit 3'    # prints hi, exits 3
    cronhive run -f --sql 'SELECT current_user' --database wh --role etl
    """
    limits = limit_flags(sql)
    request = pb.StartRunRequest(
        command=[" ".join(command)] if shell else list(command),
        shell=shell,
        env=env_pairs(env),
        cwd=cwd or "",
        target_tags=list(tags),
    )
    if any(v is not None for v in sql.values()):
        job = pb.Job()
        try:
            apply_options(job, {**sql, "command": list(command) or None})
        except InvalidInput as exc:
            key = (exc.field or "").replace("_", "-")
            fail(f"--{key}: {str(exc).removeprefix(f'{exc.field}: ')}", EXIT_USAGE)
        request.sql.CopyFrom(job.sql)
    elif not command:
        fail("give a command after -- or --sql/--sql-file", EXIT_USAGE)
    if timeout is not None:
        request.timeout_seconds = seconds(timeout, "--timeout")
    if output_cap is not None:
        request.output_cap_bytes = size(output_cap, "--output-cap")
    if limits is not None:
        set_limits(request.limits, limits)

    async def body(client: Client, _: Target) -> int:
        execution = await client.runs.Start(request)
        return await print_or_follow(client, execution, follow)

    sys.exit(call(ctx, body))


@cli.command()
@click.argument("run_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
@click.pass_context
def status(ctx: click.Context, run_id: str, as_json: bool) -> None:
    """Show one run: state, exit code, node, times."""

    async def body(client: Client, _: Target) -> pb.Execution:
        return await client.runs.GetStatus(pb.GetStatusRequest(id=run_id))

    show_execution(call(ctx, body), as_json)


def show_execution(e: pb.Execution, as_json: bool) -> None:
    """Prints one run as `key: value` lines, or as JSON."""
    d = execution_dict(e)
    if as_json:
        echo_json(d)
        return
    outcome = "-"
    if d["exit_code"] is not None:
        outcome = f"exit {d['exit_code']}"
    elif d["signal"] is not None:
        outcome = f"signal {d['signal']}"
    fields(
        {
            "id": e.id,
            "job": e.job_name or "(ad hoc)",
            "command": command_line(e.command, e.shell) if e.command else "-",
            **({"env": " ".join(f"{k}={v}" for k, v in sorted(e.env.items()))} if e.env else {}),
            "state": paint(e.state, e.state),
            "exit": outcome,
            "attempt": str(e.attempt),
            "node": e.node_name or (e.node_id or "-"),
            "queued": when(d["queued_at"]),
            "started": when(d["started_at"]),
            "finished": when(d["finished_at"]),
            "output": f"{e.stdout_bytes} B stdout, {e.stderr_bytes} B stderr"
            + (" (capped)" if e.output_capped else ""),
            **({"tags": ", ".join(e.target_tags)} if e.target_tags else {}),
            **({"limits": text} if (text := limits_text(e)) else {}),
            **({"applied": e.limits_applied} if e.limits_applied else {}),
            **({"waiting": e.waiting} if e.waiting else {}),
            **({"error": e.error} if e.error else {}),
            **({"reason": e.reason} if e.reason else {}),
        }
    )


@cli.command()
@click.argument("run_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="The run after the request, as JSON.")
@click.pass_context
def stop(ctx: click.Context, run_id: str, as_json: bool) -> None:
    """Stop a run (SIGTERM, a grace period, SIGKILL); a finished run is left as it is."""

    async def body(client: Client, _: Target) -> pb.Execution:
        return await client.runs.Stop(pb.StopRunRequest(id=run_id))

    e = call(ctx, body)
    if as_json:
        echo_json(execution_dict(e))
    else:
        click.echo(f"{e.id} {paint(e.state, e.state)}")


@cli.command()
@click.argument("run_id", metavar="ID")
@click.option("-f", "--follow", is_flag=True, help="Keep streaming until the run ends.")
@click.option("--stdout", "only", flag_value="stdout", help="Only standard output.")
@click.option("--stderr", "only", flag_value="stderr", help="Only standard error.")
@click.pass_context
def logs(ctx: click.Context, run_id: str, follow: bool, only: str | None) -> None:
    """Print a run's output from its first byte (alias: output). Each stream goes to the
    matching local stream; with -f, follow until the run ends."""

    async def body(client: Client, _: Target) -> None:
        await stream_output(client, run_id, stream=only or "", follow=follow)

    call(ctx, body)
