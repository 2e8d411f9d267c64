"""`cronhive apply -f jobs.toml [--dry-run] [--prune]`: make the server's jobs match a file.

File format (docs/cli.md): an optional top-level `group` (every job in the file is owned
by that group; default: you), and one `[jobs.NAME]` table per job whose keys are `add`'s
long flags with `_` (command, cron|every|at, tz, timeout, retries, ...). The whole file
is checked locally before anything is sent; then jobs are created, updated (only the
fields that differ) and, with --prune, deleted (jobs of the same owner not in the file).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
from google.protobuf.field_mask_pb2 import FieldMask

from cronhive.api import validate
from cronhive.api._generated.cronhive.v1 import cronhive_pb2 as pb
from cronhive.api.client import Client
from cronhive.api.convert import spec_pb
from cronhive.cli._app import EXIT_USAGE, cli, fail
from cronhive.cli._connect import Target, call, caller_name
from cronhive.cli._jobs import list_jobs
from cronhive.cli._jobspec import apply_options
from cronhive.errors import InvalidInput

__all__ = ["Plan", "desired_jobs", "plan", "push"]


def _compared() -> list[str]:
    # Imported here: the server module pulls in the store, which a client does not need.
    from cronhive.api.jobs import SPEC_FIELDS

    return sorted(SPEC_FIELDS - {"name", "owner"})


@dataclass(frozen=True, kw_only=True)
class Change:
    """One line of the plan: create, update (with the fields) or delete."""

    action: str
    name: str
    job: pb.Job
    paths: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Plan:
    changes: list[Change] = field(default_factory=list)
    unchanged: int = 0


def load_file(path: Path) -> dict[str, Any]:
    """The parsed TOML; InvalidInput naming the file on any problem."""
    try:
        return tomllib.loads(path.read_text())
    except OSError as exc:
        raise InvalidInput(f"{path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(f"{path}: {exc}") from exc


def desired_jobs(doc: Mapping[str, Any], *, where: str) -> tuple[str | None, dict[str, pb.Job]]:
    """(group, name -> job message, `enabled` present only when the file sets it).

    Raises InvalidInput naming `where`, the job and the key for anything malformed.
    """
    unknown = sorted(set(doc) - {"group", "jobs"})
    if unknown:
        raise InvalidInput(f"{where}: unknown top-level key {unknown[0]!r} (use group, jobs)")
    group = doc.get("group")
    if group is not None and not isinstance(group, str):
        raise InvalidInput(f"{where}: group must be a string")
    tables = doc.get("jobs", {})
    if not isinstance(tables, dict):
        raise InvalidInput(f"{where}: jobs must be tables: [jobs.NAME]")
    owner = f"group:{group}" if group else ""
    jobs: dict[str, pb.Job] = {}
    for name, opts in tables.items():
        if not isinstance(opts, dict):
            raise InvalidInput(f"{where}: jobs.{name} must be a table")
        if "group" in opts:
            raise InvalidInput(f"{where}: jobs.{name}: group is set once, at the top")
        if "command" not in opts and "sql" not in opts and "sql_file" not in opts:
            raise InvalidInput(f"{where}: jobs.{name}: command (or sql) is required")
        job = pb.Job(name=name, owner=owner)
        try:
            apply_options(job, opts)
            _normalised(job, enabled=True)  # every server limit, checked before sending
        except InvalidInput as exc:
            raise InvalidInput(f"{where}: jobs.{name}: {exc}", field=exc.field) from None
        jobs[name] = job
    return group, jobs


def _normalised(job: pb.Job, *, enabled: bool) -> pb.Job:
    """The job as the server would store it (defaults filled in, lists sorted)."""
    msg = pb.Job()
    msg.CopyFrom(job)
    msg.enabled = enabled
    return spec_pb(validate.job_spec(msg, owner=job.owner or "user:caller"))


def _value(msg: pb.Job, name: str) -> Any:
    fd = pb.Job.DESCRIPTOR.fields_by_name[name]
    value = getattr(msg, name)
    if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
        return dict(value)
    if fd.is_repeated:
        return list(value)
    if fd.has_presence and not msg.HasField(name):  # type: ignore[arg-type]
        return None
    if fd.message_type is not None:
        return value.SerializeToString(deterministic=True)
    return value


def _differing(current: pb.Job, wanted: pb.Job, manage_enabled: bool) -> tuple[str, ...]:
    now = _normalised(current, enabled=current.enabled)
    want = _normalised(wanted, enabled=wanted.enabled if manage_enabled else current.enabled)
    return tuple(n for n in _compared() if _value(now, n) != _value(want, n))


def plan(
    existing: list[pb.Job], wanted: dict[str, pb.Job], enabled_keys: set[str], *, prune: bool
) -> Plan:
    """What to do so that `existing` (the owner's jobs) matches `wanted`."""
    by_name = {j.name: j for j in existing}
    changes: list[Change] = []
    unchanged = 0
    for name, job in wanted.items():
        current = by_name.get(name)
        if current is None:
            if name not in enabled_keys:
                job.enabled = True
            changes.append(Change(action="create", name=name, job=job))
            continue
        paths = _differing(current, job, name in enabled_keys)
        if paths:
            job.id = current.id
            changes.append(Change(action="update", name=name, job=job, paths=paths))
        else:
            unchanged += 1
    if prune:
        for name, current in sorted(by_name.items()):
            if name not in wanted:
                changes.append(Change(action="delete", name=name, job=current))
    return Plan(changes=changes, unchanged=unchanged)


async def push(client: Client, changes: list[Change]) -> None:
    """Sends each change, in order; stops at the first refusal (GRPCError)."""
    for change in changes:
        if change.action == "create":
            await client.jobs.Create(pb.CreateJobRequest(job=change.job))
        elif change.action == "update":
            mask = FieldMask(paths=list(change.paths))
            await client.jobs.Update(pb.UpdateJobRequest(job=change.job, update_mask=mask))
        else:
            await client.jobs.Delete(pb.DeleteJobRequest(id=change.job.id))


def print_plan(result: Plan, dry_run: bool) -> None:
    for change in result.changes:
        detail = f" ({', '.join(change.paths)})" if change.paths else ""
        click.echo(f"{change.action} {change.name}{detail}")
    counts = {a: sum(c.action == a for c in result.changes) for a in ("create", "update", "delete")}
    verb = "would " if dry_run else ""
    click.echo(
        f"{verb}create {counts['create']}, update {counts['update']}, "
        f"delete {counts['delete']}; {result.unchanged} unchanged"
        + (" (dry run: nothing applied)" if dry_run else "")
    )


@cli.command()
@click.option(
    "-f",
    "--file",
    "path",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="The jobs file (TOML).",
)
@click.option("--dry-run", is_flag=True, help="Show the difference; change nothing.")
@click.option("--prune", is_flag=True, help="Delete the owner's jobs that are not in the file.")
@click.pass_context
def apply(ctx: click.Context, path: Path, dry_run: bool, prune: bool) -> None:
    """Make the server's jobs match FILE; print create/update/delete lines.

    \b
    cronhive apply -f jobs.toml --dry-run
    cronhive apply -f jobs.toml --prune
    """
    try:
        doc = load_file(path)
        group, wanted = desired_jobs(doc, where=str(path))
    except InvalidInput as exc:
        fail(str(exc), EXIT_USAGE)
    enabled_keys = {n for n, t in doc.get("jobs", {}).items() if "enabled" in t}

    async def body(client: Client, target: Target) -> Plan:
        owner = f"group:{group}" if group else f"user:{caller_name(target)}"
        result = plan(await list_jobs(client, owner), wanted, enabled_keys, prune=prune)
        if not dry_run:
            await push(client, result.changes)
        return result

    print_plan(call(ctx, body), dry_run)
