"""`cronhive notifications [JOB]`: the reactions outbox (what was sent where, and how it
went); `cronhive notifications retry ID` queues a failed delivery again."""

from __future__ import annotations

from typing import Any

import click

from cronhive.api._generated.cronhive.v1 import cronhive_pb2 as pb
from cronhive.api.client import Client
from cronhive.api.shapes import shape
from cronhive.cli._app import EXIT_USAGE, cli, fail
from cronhive.cli._connect import Target, call, caller_name
from cronhive.cli._jobspec import find_job
from cronhive.cli._output import echo_json, paint, table, when
from cronhive.errors import InvalidInput
from cronhive.notify import parse_notify_flags

__all__ = ["notification_dict"]

_PAINT = {"delivered": "succeeded", "failed": "failed", "pending": "queued"}


def notification_dict(n: pb.Notification) -> dict[str, Any]:
    return shape(n)


@cli.command()
@click.argument("args", nargs=-1, metavar="[JOB | retry ID | defaults]")
@click.option("-n", "count", type=click.IntRange(1, 1000), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="JSON with stable keys.")
@click.option("--group", metavar="G", help="With defaults: group G's, not yours.")
@click.option(
    "--notify",
    "rules",
    multiple=True,
    metavar="EVENT=TARGET",
    help="With defaults: set them (repeatable; 'none' clears).",
)
@click.pass_context
def notifications(
    ctx: click.Context,
    args: tuple[str, ...],
    count: int,
    as_json: bool,
    group: str | None,
    rules: tuple[str, ...],
) -> None:
    """Notifications (webhooks, mails, chained jobs) of your jobs, or of job JOB, newest
    first, with their delivery state; `retry ID` sends a failed one again; `defaults
    [--group G] [--notify EVENT=TARGET]...` shows or sets the triggers every job of
    yours (or G's) has for each event it has no rule of its own for. (Jobs named retry or
    defaults: `user:YOU/NAME`.)"""
    if (group or rules) and args[:1] != ("defaults",):
        fail("--group and --notify go with: cronhive notifications defaults", EXIT_USAGE)
    if args[:1] == ("defaults",):
        if len(args) != 1:
            fail("usage: cronhive notifications defaults [--group G] [--notify E=T]...", EXIT_USAGE)
        _defaults(ctx, group, rules, as_json)
        return
    if args[:1] == ("retry",):
        if len(args) != 2:
            fail("usage: cronhive notifications retry ID", EXIT_USAGE)
        _retry(ctx, args[1], as_json)
        return
    if len(args) > 1:
        fail("usage: cronhive notifications [JOB] | retry ID", EXIT_USAGE)

    async def body(client: Client, target: Target) -> list[pb.Notification]:
        job_id = ""
        if args:
            job_id = (await find_job(client, args[0], caller_name(target))).id
        reply = await client.notifications.ListNotifications(
            pb.ListNotificationsRequest(job_id=job_id, page_size=count)
        )
        return list(reply.notifications)

    found = call(ctx, body)
    if as_json:
        echo_json([notification_dict(n) for n in found])
        return
    rows = []
    for n in found:
        d = notification_dict(n)
        rows.append(
            [
                n.id,
                n.job_name or "-",
                n.event,
                n.target,
                paint(n.state, _PAINT.get(n.state, n.state)),
                str(n.attempts),
                when(d["delivered_at"] or d["created_at"]),
                (n.last_error or "")[:60] or "-",
            ]
        )
    table(["ID", "JOB", "EVENT", "TARGET", "STATE", "TRIES", "WHEN", "LAST ERROR"], rows)


def _retry(ctx: click.Context, delivery_id: str, as_json: bool) -> None:
    async def body(client: Client, target: Target) -> pb.Notification:
        return await client.notifications.RetryNotification(
            pb.RetryNotificationRequest(id=delivery_id)
        )

    n = call(ctx, body)
    if as_json:
        echo_json(notification_dict(n))
        return
    click.echo(f"notification {n.id} ({n.event} to {n.target}) queued again")


def _defaults(ctx: click.Context, group: str | None, rules: tuple[str, ...], as_json: bool) -> None:
    owner = f"group:{group}" if group else ""
    msg = pb.NotifyDefaults(owner=owner)
    if rules:
        try:
            notify = {} if list(rules) == ["none"] else parse_notify_flags(rules)
        except InvalidInput as exc:
            fail(f"--notify: {str(exc).removeprefix('notify: ')}", EXIT_USAGE)
        for event, targets in sorted(notify.items()):
            msg.notify.add(event=event, targets=list(targets))

    async def body(client: Client, target: Target) -> pb.NotifyDefaults:
        if rules:
            return await client.notifications.SetNotifyDefaults(msg)
        return await client.notifications.GetNotifyDefaults(
            pb.GetNotifyDefaultsRequest(owner=owner)
        )

    found = call(ctx, body)
    rules_of = {r.event: list(r.targets) for r in found.notify}
    if as_json:
        echo_json({"owner": found.owner, "notify": rules_of})
        return
    shown = "  ".join(f"{e}={','.join(t)}" for e, t in rules_of.items()) or "none"
    click.echo(f"defaults of {found.owner}: {shown}")
