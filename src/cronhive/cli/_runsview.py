"""`runs` (every run you may see, filtered), `events` (what happened, `-f` to follow), and
the `--watch` loop they share with `ls`: the terminal's view of a cluster."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import click
from google.protobuf.timestamp_pb2 import Timestamp

from cronhive.api._generated.cronhive.v1 import cronhive_pb2 as pb
from cronhive.api.client import Client
from cronhive.cli._app import cli
from cronhive.cli._connect import Target, call, caller_name
from cronhive.cli._flags import seconds
from cronhive.cli._jobspec import find_job
from cronhive.cli._output import echo_json, event_dict, execution_dict, paint, table, when
from cronhive.model import RunState

__all__ = ["watching"]

STATES = [s.value for s in RunState]


def watching(
    render: Callable[[], Awaitable[None]], *, watch: bool, interval: float
) -> Callable[[], Awaitable[None]]:
    """`render` once, or (with `watch`) again every `interval` seconds until Ctrl-C: on a
    terminal the screen is redrawn, elsewhere each frame follows the last after a blank
    line (so a pipe or a log gets every frame)."""

    async def loop() -> None:
        if not watch:
            await render()
            return
        tty = sys.stdout.isatty()
        first = True
        while True:
            if tty:
                click.echo("\x1b[H\x1b[2J", nl=False)
            elif not first:
                click.echo()
            first = False
            stamp = datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
            click.echo(f"every {interval:g}s, at {stamp} (Ctrl-C to end)")
            await render()
            sys.stdout.flush()
            await asyncio.sleep(interval)

    return loop


def _since(text: str) -> datetime:
    """`1h` (that long ago) or an ISO 8601 instant (naive: local time)."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return datetime.now(UTC) - timedelta(seconds=seconds(text, "--since"))
    return moment if moment.tzinfo else moment.astimezone()


@cli.command()
@click.option("--state", "states", multiple=True, type=click.Choice(STATES), help="Repeatable.")
@click.option("--job", "job_ref", metavar="NAME", help="Only runs of this job.")
@click.option("--node", metavar="NAME", help="Only runs on this node (name or id).")
@click.option("--owner", metavar="OWNER", help="Only runs of user:U or group:G (admins: any).")
@click.option("--since", metavar="WHEN", help="Queued since: 1h, 2d, or an ISO 8601 time.")
@click.option("-n", "count", type=click.IntRange(1, 1000), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="JSON with stable keys.")
@click.option("-w", "--watch", is_flag=True, help="Refresh until Ctrl-C.")
@click.option("--interval", type=click.FloatRange(0.2, 3600), default=2.0, show_default=True)
@click.pass_context
def runs(
    ctx: click.Context,
    states: tuple[str, ...],
    job_ref: str | None,
    node: str | None,
    owner: str | None,
    since: str | None,
    count: int,
    as_json: bool,
    watch: bool,
    interval: float,
) -> None:
    """The runs you may see, scheduled and ad hoc, newest first.

    \b
    cronhive runs --state running --watch
    cronhive runs --job backup --since 1d --json
    """
    request = pb.ListExecutionsRequest(
        states=list(states), node=node or "", owner=owner or "", page_size=count
    )
    if since is not None:
        stamp = Timestamp()
        stamp.FromDatetime(_since(since).astimezone(UTC))
        request.since.CopyFrom(stamp)

    async def body(client: Client, target: Target) -> None:
        if job_ref is not None:
            request.job_id = (await find_job(client, job_ref, caller_name(target))).id

        async def render() -> None:
            reply = await client.runs.ListExecutions(request)
            _print_runs(list(reply.executions), as_json)

        await watching(render, watch=watch, interval=interval)()

    call(ctx, body)


def _print_runs(executions: list[pb.Execution], as_json: bool) -> None:
    if as_json:
        echo_json([execution_dict(e) for e in executions])
        return
    rows = []
    for e in executions:
        d = execution_dict(e)
        exit_ = "-" if d["exit_code"] is None else str(d["exit_code"])
        if d["signal"] is not None:
            exit_ = f"signal {d['signal']}"
        rows.append(
            [
                e.id,
                e.job_name or "(ad hoc)",
                paint(e.state, e.state),
                exit_,
                str(e.attempt),
                e.node_name or "-",
                when(d["queued_at"]),
                when(d["finished_at"]),
            ]
        )
    table(["RUN", "JOB", "STATE", "EXIT", "TRY", "NODE", "QUEUED", "FINISHED"], rows)


@cli.command()
@click.option("-f", "--follow", is_flag=True, help="Go on printing new events until Ctrl-C.")
@click.option("--job", "job_ref", metavar="NAME", help="Only events of this job.")
@click.option("--after", type=click.IntRange(0), help="Start after this event id [0: all kept].")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_context
def events(
    ctx: click.Context, follow: bool, job_ref: str | None, after: int | None, as_json: bool
) -> None:
    """What happened to the jobs, runs and nodes you may see, oldest first.

    \b
    cronhive events              # what is kept, then exit
    cronhive events -f --after 0 # the same, then new events as they happen
    """

    async def body(client: Client, target: Target) -> None:
        request = pb.WatchEventsRequest(after_id=after or 0, backlog_only=not follow)
        if job_ref is not None:
            request.job_id = (await find_job(client, job_ref, caller_name(target))).id
        async with client.events.Watch.open() as stream:
            await stream.send_message(request, end=True)
            async for event in stream:
                _print_event(event, as_json)

    call(ctx, body)


def _print_event(event: pb.Event, as_json: bool) -> None:
    d = event_dict(event)
    if as_json:
        click.echo(json.dumps(d))
    else:
        subject = event.execution_id or event.job_id or "-"
        click.echo(f"{d['id']:>6}  {when(d['at'])}  {event.kind:<14} {subject}  {event.message}")
    sys.stdout.flush()
