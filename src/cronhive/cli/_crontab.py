"""`cronhive import-crontab FILE [-o jobs.toml]`: a user crontab turned into jobs.

Rules (docs/cli.md keeps them for users):
- blank lines and `#` comments are skipped; `# name: NAME` right above an entry names it;
- `NAME=value` lines (quotes stripped) add to the env of the entries after them;
  `CRON_TZ`/`TZ` set their time zone instead; `MAILTO` and `SHELL` are dropped with a
  warning (cronhive keeps output itself; commands run with /bin/sh);
- `@reboot` is refused (a node restart is not a schedule); other `@` macros are kept;
- `%`: unescaped, cron turns it into a newline and feeds the rest to stdin, which has no
  equivalent here, so it is refused; `\\%` becomes a literal `%`;
- every entry becomes a shell job (`shell = true`, the command text as the script);
- names come from the command (`/usr/bin/backup.sh --full` -> `backup.sh-full`), with
  `-2`, `-3` in file order on a clash: stable for the same file, and editing a schedule
  keeps the name, so `apply` updates instead of recreating.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import tomli_w

from cronhive.api.client import Client
from cronhive.cli._app import EXIT_USAGE, cli, fail
from cronhive.cli._apply import Plan, desired_jobs, plan, print_plan, push
from cronhive.cli._connect import Target, call, caller_name
from cronhive.cli._jobs import list_jobs
from cronhive.errors import InvalidInput

__all__ = ["Converted", "convert"]

_ENV_LINE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)")
_NAME_HINT = re.compile(r"#\s*name:\s*([A-Za-z0-9_.-]{1,100})\s*")
_UNSAFE = re.compile(r"[^a-z0-9_.]+")
_MAX_SLUG = 60


@dataclass(frozen=True, kw_only=True)
class Converted:
    """The jobs (apply-file tables by name) and warnings for the user."""

    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def _percent(command: str, where: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(command):
        if command.startswith("\\%", i):
            out.append("%")
            i += 2
            continue
        if command[i] == "%":
            raise InvalidInput(
                f"{where}: unescaped % (cron would feed the rest to stdin); "
                "write \\% for a literal % or move the input into the command"
            )
        out.append(command[i])
        i += 1
    return "".join(out)


def _slug(command: str) -> str:
    words = command.split()
    if words:
        words[0] = words[0].rsplit("/", 1)[-1]
    slug = _UNSAFE.sub("-", " ".join(words).lower()).strip("-.")
    return slug[:_MAX_SLUG].rstrip("-.") or "job"


def _split_entry(line: str, where: str) -> tuple[str, str]:
    if line.startswith("@"):
        macro, _, command = line.partition(" ")
        if macro.lower() == "@reboot":
            raise InvalidInput(
                f"{where}: @reboot has no equivalent (a node start is not a schedule); "
                "remove the line or give it a real schedule"
            )
        return macro.lower(), command.strip()
    parts = line.split(None, 5)
    if len(parts) < 6:
        raise InvalidInput(f"{where}: expected five time fields and a command")
    return " ".join(parts[:5]), parts[5]


def convert(text: str, *, source: str, tz: str = "UTC") -> Converted:
    """The jobs of a user crontab (no user column). Raises InvalidInput naming the line."""
    result = Converted()
    env: dict[str, str] = {}
    zone = tz
    hint: str | None = None
    used: set[str] = set()
    for number, raw in enumerate(text.splitlines(), start=1):
        where = f"{source}:{number}"
        line = raw.strip()
        if not line or line.startswith("#"):
            m = _NAME_HINT.fullmatch(line)
            hint = m.group(1) if m else None if line else hint
            continue
        env_match = _ENV_LINE.fullmatch(line)
        if env_match and not line[0].isdigit():
            key, value = env_match.group(1), _unquote(env_match.group(2))
            if key in ("CRON_TZ", "TZ"):
                zone = value
            elif key in ("MAILTO", "SHELL"):
                result.warnings.append(f"{where}: {key} dropped ({_DROPPED[key]})")
            else:
                env[key] = value
            continue
        expr, command = _split_entry(line, where)
        command = _percent(command, where)
        if not command:
            raise InvalidInput(f"{where}: no command")
        name = hint or _slug(command)
        hint = None
        base, n = name, 1
        while name in used:
            n += 1
            name = f"{base}-{n}"
        used.add(name)
        job: dict[str, Any] = {"command": command, "cron": expr, "tz": zone}
        if env:
            job["env"] = dict(env)
        result.jobs[name] = job
    return result


_DROPPED = {
    "MAILTO": "cronhive keeps every run's output: see `cronhive logs`",
    "SHELL": "commands run with /bin/sh",
}


@cli.command("import-crontab")
@click.argument("crontab", type=click.Path(path_type=Path, dir_okay=False, allow_dash=True))
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write a jobs file for `cronhive apply` instead of creating the jobs.",
)
@click.option("--tz", default="UTC", show_default=True, help="Zone of entries before CRON_TZ.")
@click.option("--dry-run", is_flag=True, help="Show what would be created; change nothing.")
@click.pass_context
def import_crontab(
    ctx: click.Context, crontab: Path, output: Path | None, tz: str, dry_run: bool
) -> None:
    """Turn a crontab into jobs (or into a jobs.toml with -o). FILE may be - for stdin:
    `crontab -l | cronhive import-crontab -`."""
    try:
        text = sys.stdin.read() if str(crontab) == "-" else crontab.read_text()
        converted = convert(text, source=str(crontab), tz=tz)
        doc: dict[str, Any] = {"jobs": converted.jobs}
        _, wanted = desired_jobs(doc, where=str(crontab))
    except OSError as exc:
        fail(f"{crontab}: {exc.strerror}", EXIT_USAGE)
    except InvalidInput as exc:
        fail(str(exc), EXIT_USAGE)
    for warning in converted.warnings:
        click.echo(f"cronhive: warning: {warning}", err=True)
    if output is not None:
        output.write_text(tomli_w.dumps(doc))
        count = len(converted.jobs)
        click.echo(f"{count} jobs written to {output}; next: cronhive apply -f {output}")
        return

    async def body(client: Client, target: Target) -> Plan:
        existing = await list_jobs(client, f"user:{caller_name(target)}")
        result = plan(existing, wanted, set(), prune=False)
        if not dry_run:
            await push(client, result.changes)
        return result

    print_plan(call(ctx, body), dry_run)
