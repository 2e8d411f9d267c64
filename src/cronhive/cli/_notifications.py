"""`cronhive notifications [JOB]`: the reactions outbox (what was sent where, and how it
went); `cronhive notifications retry ID` queues a failed delivery again."""

from __future__ import annotations

import json
from typing import Any

import click

from cronhive.api._generated.cronhive.v1 import cronhive_pb2 as pb
from cronhive.api.client import Client
from cronhive.cli._app import EXIT_USAGE, cli, fail
from cronhive.cli._connect import Target, call, caller_name
from cronhive.cli._jobspec import find_job
from cronhive.cli._output import echo_json, paint, table, when

__all__ = ["notification_dict"]

_PAINT = {"delivered": "succeeded", "failed": "failed", "pending": "queued"}


def _ts(msg: Any, name: str) -> str | None:
    if not msg.HasField(name):
        return None
    value: str = getattr(msg, name).ToDatetime().isoformat() + "Z"
    return value


def notification_dict(n: pb.Notification) -> dict[str, Any]:
    return {
        "id": n.id,
        "event": n.event,
        "target": n.target,
        "owner": n.owner,
        "job_id": n.job_id or None,
        "job_name": n.job_name or None,
        "execution_id": n.execution_id or None,
        "state": n.state,
        "attempts": n.attempts,
        "next_attempt_at": _ts(n, "next_attempt_at"),
        "last_error": n.last_error or None,
        "created_at": _ts(n, "created_at"),
        "delivered_at": _ts(n, "delivered_at"),
        "payload": json.loads(n.payload_json) if n.payload_json else None,
    }


@cli.command()
@click.argument("args", nargs=-1, metavar="[JOB | retry ID]")
@click.option("-n", "count", type=click.IntRange(1, 1000), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="JSON with stable keys.")
@click.pass_context
def notifications(ctx: click.Context, args: tuple[str, ...], count: int, as_json: bool) -> None:
    """Notifications (webhooks, mails, chained jobs) of your jobs, or of job JOB, newest
    first, with their delivery state; `retry ID` sends a failed one again. (A job named
    retry: `user:YOU/retry`.)"""
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
