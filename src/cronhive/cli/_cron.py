"""`cronhive cron next`: preview when a schedule fires, in its own zone."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import click

from cronhive.cli._app import EXIT_USAGE, cli, fail
from cronhive.errors import InvalidSchedule
from cronhive.schedule import (
    DstRepeated,
    DstSkipped,
    Schedule,
    kind_of,
    parse_schedule,
    uses_seed,
)


@cli.group("cron")
def cron_group() -> None:
    """Work with schedule expressions."""


@cron_group.command("next")
@click.argument("expr", nargs=-1, required=True)
@click.option("--tz", "timezone", default="UTC", show_default=True, help="IANA time zone.")
@click.option("--after", help="ISO 8601 instant to start after (naive = in --tz). Default: now.")
@click.option("-n", "count", type=click.IntRange(1, 10_000), default=5, show_default=True)
@click.option(
    "--dst-repeated",
    default="auto",
    show_default=True,
    help="Repeated wall time: " + ", ".join(DstRepeated) + ".",
)
@click.option(
    "--dst-skipped",
    default="auto",
    show_default=True,
    help="Skipped wall time: " + ", ".join(DstSkipped) + ".",
)
@click.option(
    "--job",
    "job_name",
    default="",
    metavar="NAME",
    help="The job's name: it picks the values of H (and of 'offset H').",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object on stdout.")
def cron_next(
    expr: tuple[str, ...],
    timezone: str,
    after: str | None,
    count: int,
    dst_repeated: str,
    dst_skipped: str,
    job_name: str,
    as_json: bool,
) -> None:
    """Prints the next N fire times of EXPR, one per line, ISO 8601 in the schedule's zone.

    EXPR is a cron expression ('0 3 * * *', six fields = leading seconds, H for a value
    picked by --job's name), a macro (@daily), 'every 5m' (with 'offset 17m' or
    'offset H') or 'at 2026-12-01T09:00'. Quote it or pass its fields as words.
    """
    text = " ".join(expr)
    if uses_seed(text) and not job_name:
        fail("EXPR uses H: pass --job NAME (the job's name picks the values)", EXIT_USAGE)
    try:
        schedule = parse_schedule(
            kind_of(text),
            text,
            timezone=timezone,
            dst_repeated=dst_repeated,
            dst_skipped=dst_skipped,
            seed=job_name,
        )
    except InvalidSchedule as exc:
        fail(f"{_option_name(exc.field)}: {exc}", EXIT_USAGE)
        return
    zone = ZoneInfo(schedule.timezone)
    start = _parse_after(after, zone)
    times = []
    for when in schedule.iter_after(start):
        times.append(when.astimezone(zone).isoformat())
        if len(times) == count:
            break
    if as_json:
        click.echo(json.dumps(_as_dict(schedule, start, times)))
    else:
        for line in times:
            click.echo(line)


def _option_name(field: str | None) -> str:
    return {
        "timezone": "--tz",
        "dst_repeated": "--dst-repeated",
        "dst_skipped": "--dst-skipped",
    }.get(field or "", "EXPR")


def _parse_after(text: str | None, zone: ZoneInfo) -> datetime:
    if text is None:
        return datetime.now(UTC)
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        fail(
            f"--after: bad instant {text!r}: use ISO 8601, e.g. 2026-12-01T09:00:00+01:00",
            EXIT_USAGE,
        )
        raise AssertionError("unreachable") from None
    return when if when.tzinfo is not None else when.replace(tzinfo=zone)


def _as_dict(schedule: Schedule, start: datetime, times: list[str]) -> dict[str, object]:
    return {
        "kind": schedule.kind.value,
        "expression": schedule.expression,
        "timezone": schedule.timezone,
        "dst_repeated": schedule.dst_repeated.value,
        "dst_skipped": schedule.dst_skipped.value,
        "description": schedule.describe(),
        "fields": schedule.fields,
        "after": start.isoformat(),
        "next": times,
    }
