"""`cronhive import-crontab FILE... [-o jobs.toml]`: user and system crontabs turned into jobs.

Rules (docs/cli.md keeps them for users):
- blank lines and `#` comments are skipped; `# name: NAME` right above an entry names it;
- `NAME=value` lines (quotes stripped) add to the env of the entries after them;
  `CRON_TZ`/`TZ` set their time zone instead; `SHELL` is honoured: the entries after it
  run under that shell (`SHELL -c COMMAND`; `/bin/sh`, the default, is a plain shell job);
- `MAILTO=ADDRESS[,ADDRESS]` becomes a mail on *failure* of the entries after it, to the
  notification target `--mailto ADDRESS=TARGET` (or `--mailto TARGET` for any address)
  names; an address no flag names is refused with what to add, or reported and left out
  with `--skip-unsupported`; `MAILTO=""` means no mail, as in cron. Failure, not cron's
  "any output": cronhive keeps every run's output, so mail says only that a run failed;
- a *system* crontab (`/etc/crontab`, `/etc/cron.d/*`, or `--system`) has a user column
  after the time fields: it becomes the job's `run_as`, which the server checks against
  the policy's grants (a refused entry is reported with its line, the others go on);
  a user crontab whose command starts with a user name and a tab is refused with a hint;
- fields are split on spaces and tabs only, as cron splits them;
- `@reboot` has no equivalent (a node start is not a schedule): refused, or reported and
  skipped with `--skip-unsupported`; other `@` macros are kept;
- `%`: unescaped, cron turns it into a newline and feeds the rest to stdin, which has no
  equivalent here, so it is refused; `\\%` becomes a literal `%`;
- names come from the file in a system crontab other than `crontab` (`/etc/cron.d/certbot`
  -> `certbot`: cron.d files are named after what they serve), else from the command
  (`/usr/bin/backup.sh --full` -> `backup.sh-full`); `-2`, `-3` in file order on a
  clash: stable for the same files, and editing a schedule keeps the name, so `apply`
  updates instead of recreating.
"""

from __future__ import annotations

import pwd
import re
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import tomli_w
from grpclib.const import Status
from grpclib.exceptions import GRPCError

from cronhive.api.client import Client
from cronhive.cli._app import EXIT_FAILURE, EXIT_USAGE, cli, fail
from cronhive.cli._apply import Change, Plan, desired_jobs, plan, print_plan, push
from cronhive.cli._connect import Target, call, caller_name
from cronhive.cli._jobs import list_jobs
from cronhive.errors import InvalidInput

__all__ = ["Converted", "convert", "is_system_path", "mail_targets"]

_ENV_LINE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)[ \t]*=[ \t]*(.*)")
_NAME_HINT = re.compile(r"#[ \t]*name:[ \t]*([A-Za-z0-9_.-]{1,100})[ \t]*")
_UNSAFE = re.compile(r"[^a-z0-9_.]+")
_BLANKS = re.compile(r"[ \t]+")  # cron's field separators: nothing else
_USER = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}")
_MAX_SLUG = 60
_PLAIN_SHELLS = ("/bin/sh", "/usr/bin/sh")
_TARGET = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")  # a [notify.NAME] of the node config
_MACROS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")


def mail_targets(items: Sequence[str]) -> dict[str, str]:
    """`--mailto ADDRESS=TARGET` / `--mailto TARGET` flags as address -> target name
    ("*": any address). InvalidInput for a malformed one."""
    out: dict[str, str] = {}
    for item in items:
        address, sep, target = item.rpartition("=")
        address = address.strip() if sep else "*"
        if not _TARGET.fullmatch(target.strip()) or (sep and not address):
            raise InvalidInput(f"--mailto: expected ADDRESS=TARGET or TARGET, got {item!r}")
        out[address.lower()] = target.strip()
    return out


def _mailto(
    value: str, where: str, targets: Mapping[str, str], result: Converted, skip: bool
) -> list[str]:
    """The targets that mail a MAILTO line's addresses (none for `MAILTO=""`)."""
    found: list[str] = []
    for address in (a.strip() for a in value.split(",")):
        if not address:
            continue
        target = targets.get(address.lower()) or targets.get("*")
        if target is None:
            why = (
                f"{where}: MAILTO={address} has no notification target: pass --mailto "
                f"{address}=TARGET, TARGET being a [notify.TARGET] table with "
                f'mail = "{address}" in the node configuration'
            )
            if not skip:
                raise InvalidInput(f"{why} (or --skip-unsupported to import without this mail)")
            result.skipped.append(f"{why}; its entries import without this mail")
        elif target not in found:
            found.append(target)
    return found


@dataclass(kw_only=True)
class Converted:
    """The jobs (apply-file tables by name), where each came from, what was skipped and
    warnings for the user."""

    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    lines: dict[str, str] = field(default_factory=dict)  # job name -> FILE:LINE
    skipped: list[str] = field(default_factory=list)  # FILE:LINE: why
    warnings: list[str] = field(default_factory=list)
    used: set[str] = field(default_factory=set)


def is_system_path(path: Path) -> bool:
    """The places cron reads system crontabs (with a user column) from."""
    text = str(path)
    return text == "/etc/crontab" or text.startswith("/etc/cron.d/")


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


class Unsupported(Exception):
    """An entry cronhive has no equivalent for (`@reboot`)."""


def _fields(text: str, count: int) -> list[str]:
    """`count` blank-separated fields and the rest of the line (split on space and tab)."""
    return _BLANKS.split(text.strip(" \t"), maxsplit=count)


def _split_entry(line: str, where: str, system: bool) -> tuple[str, str | None, str]:
    """(schedule, user or None, command) of one entry line."""
    users = 1 if system else 0
    if line.startswith("@"):
        parts = _fields(line, 1 + users)
        macro = parts[0].lower()
        if macro == "@reboot":
            raise Unsupported(
                f"{where}: @reboot has no equivalent (a node start is not a schedule)"
            )
        if macro not in _MACROS:
            raise InvalidInput(f"{where}: unknown macro {parts[0]!r}")
        time_fields = 1
    else:
        parts = _fields(line, 5 + users)
        time_fields = 5
    if len(parts) < time_fields + users + 1:
        what = "five time fields" if time_fields == 5 else "a macro"
        raise InvalidInput(f"{where}: expected {what}, {'a user and ' if system else ''}a command")
    expr = " ".join(parts[:time_fields]).lower() if time_fields == 1 else " ".join(parts[:5])
    user = parts[time_fields] if system else None
    if user is not None and not _USER.fullmatch(user):
        raise InvalidInput(f"{where}: bad user column {user!r}")
    return expr, user, parts[-1]


def _looks_like_user_column(line: str) -> str | None:
    """The user name a user-crontab entry seems to start its command with, if any: a
    known account that is not also a command here (`root\\tcd / && ...`)."""
    parts = _fields(line, 1 if line.startswith("@") else 5)
    words = _BLANKS.split(parts[-1], maxsplit=1) if parts else []
    if len(words) < 2:
        return None
    word = words[0]
    try:
        pwd.getpwnam(word)
    except KeyError:
        if word != "root":
            return None
    return None if shutil.which(word) else word


def convert(
    text: str,
    *,
    source: str,
    tz: str = "UTC",
    system: bool = False,
    skip_unsupported: bool = False,
    named: str | None = None,
    into: Converted | None = None,
    mailto: Mapping[str, str] | None = None,
) -> Converted:
    """The jobs of one crontab. Raises InvalidInput naming the line. `named`: the name
    of every entry without a `# name:` hint (numbered from the second); `into` collects
    the jobs of several files under unique names; `mailto`: see `mail_targets`."""
    result = into if into is not None else Converted()
    mail: list[str] = []
    env: dict[str, str] = {}
    zone = tz
    shell = "/bin/sh"
    hint: str | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        where = f"{source}:{number}"
        line = raw.strip(" \t")
        if not line or line.startswith("#"):
            m = _NAME_HINT.fullmatch(line)
            hint = m.group(1) if m else None if line else hint
            continue
        env_match = _ENV_LINE.fullmatch(line)
        if env_match and not line[0].isdigit() and not line.startswith("@"):
            key, value = env_match.group(1), _unquote(env_match.group(2))
            if key in ("CRON_TZ", "TZ"):
                zone = value
            elif key == "MAILTO":
                mail = _mailto(value, where, mailto or {}, result, skip_unsupported)
            elif key == "SHELL":
                shell = value
            else:
                env[key] = value
            continue
        try:
            expr, user, command = _split_entry(line, where, system)
        except Unsupported as exc:
            if not skip_unsupported:
                raise InvalidInput(f"{exc}; remove the line or pass --skip-unsupported") from None
            result.skipped.append(str(exc))
            hint = None
            continue
        if not system and (name := _looks_like_user_column(line)) is not None:
            raise InvalidInput(
                f"{where}: the command starts with {name!r}, a user column: this looks like "
                "a system crontab; pass --system to run entries as that user"
            )
        command = _percent(command, where)
        if not command:
            raise InvalidInput(f"{where}: no command")
        name = hint or named or _slug(command)
        hint = None
        base, n = name, 1
        while name in result.used:
            n += 1
            name = f"{base}-{n}"
        result.used.add(name)
        job: dict[str, Any] = {"cron": expr, "tz": zone}
        if shell in _PLAIN_SHELLS:
            job["command"] = command  # a string: a /bin/sh job
        else:
            job["command"] = [shell, "-c", command]  # the entry's SHELL, as cron runs it
        if user is not None:
            job["run_as"] = user
        if env:
            job["env"] = dict(env)
        if mail:
            job["notify"] = {"failure": list(mail)}
        result.jobs[name] = job
        result.lines[name] = where
    return result


def _file_name(path: Path, system: bool | None) -> str | None:
    """The job name a file gives its entries: a system crontab's own name (`certbot`),
    except for `crontab` itself and stdin (named after each command)."""
    if not (is_system_path(path) if system is None else system):
        return None
    name = _UNSAFE.sub("-", path.name.lower()).strip("-.")
    return None if str(path) == "-" or name in ("", "crontab") else name[:_MAX_SLUG]


def _read(path: Path) -> str:
    return sys.stdin.read() if str(path) == "-" else path.read_text()


@cli.command("import-crontab")
@click.argument(
    "crontabs",
    metavar="FILE...",
    nargs=-1,
    required=True,
    type=click.Path(path_type=Path, dir_okay=False, allow_dash=True),
)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write a jobs file for `cronhive apply` instead of creating the jobs.",
)
@click.option("--tz", default="UTC", show_default=True, help="Zone of entries before CRON_TZ.")
@click.option(
    "--system/--user",
    "system",
    default=None,
    help="System crontab (a user column, taken as run_as) or user crontab "
    "[system for /etc/crontab and /etc/cron.d/*, else user].",
)
@click.option(
    "--skip-unsupported", is_flag=True, help="Report and skip @reboot lines instead of refusing."
)
@click.option(
    "--mailto",
    multiple=True,
    metavar="ADDRESS=TARGET",
    help="The notification target (a [notify.TARGET] of the node config) that mails "
    "ADDRESS, for MAILTO lines; TARGET alone: every address (repeatable).",
)
@click.option("--dry-run", is_flag=True, help="Show what would be created; change nothing.")
@click.pass_context
def import_crontab(
    ctx: click.Context,
    crontabs: tuple[Path, ...],
    output: Path | None,
    tz: str,
    system: bool | None,
    skip_unsupported: bool,
    mailto: tuple[str, ...],
    dry_run: bool,
) -> None:
    """Turn crontabs into jobs (or into a jobs.toml with -o). FILE may be - for stdin:
    `crontab -l | cronhive import-crontab -`; `import-crontab /etc/crontab /etc/cron.d/*`."""
    converted = Converted()
    try:
        targets = mail_targets(mailto)
        for path in crontabs:
            convert(
                _read(path),
                source=str(path),
                tz=tz,
                system=is_system_path(path) if system is None else system,
                skip_unsupported=skip_unsupported,
                named=_file_name(path, system),
                into=converted,
                mailto=targets,
            )
        doc: dict[str, Any] = {"jobs": converted.jobs}
        _, wanted = desired_jobs(doc, where=", ".join(map(str, crontabs)))
    except OSError as exc:
        fail(f"{exc.filename}: {exc.strerror}", EXIT_USAGE)
    except InvalidInput as exc:
        fail(str(exc), EXIT_USAGE)
    for warning in converted.warnings:
        click.echo(f"cronhive: warning: {warning}", err=True)
    for skipped in converted.skipped:
        click.echo(f"cronhive: skipped {skipped}", err=True)
    if output is not None:
        output.write_text(tomli_w.dumps(doc))
        count = len(converted.jobs)
        click.echo(f"{count} jobs written to {output}; next: cronhive apply -f {output}")
        return

    async def body(client: Client, target: Target) -> tuple[Plan, dict[str, str]]:
        existing = await list_jobs(client, f"user:{caller_name(target)}")
        result = plan(existing, wanted, set(), prune=False)
        refused: dict[str, str] = {}
        if not dry_run:
            refused = await _push_each(client, result.changes)
        return result, refused

    result, refused = call(ctx, body)
    done = [c for c in result.changes if c.name not in refused]
    print_plan(Plan(changes=done, unchanged=result.unchanged), dry_run)
    for name, why in refused.items():
        click.echo(f"cronhive: refused {name} ({converted.lines.get(name, '?')}): {why}", err=True)
    if refused:
        sys.exit(EXIT_FAILURE)


async def _push_each(client: Client, changes: list[Change]) -> dict[str, str]:
    """Sends each change; a refusal of one entry alone (a run_as the policy does not
    grant) is kept as job name -> why, and the others go on."""
    refused: dict[str, str] = {}
    for change in changes:
        try:
            await push(client, [change])
        except GRPCError as exc:
            if exc.status not in (Status.PERMISSION_DENIED, Status.INVALID_ARGUMENT):
                raise
            refused[change.name] = exc.message or exc.status.name
    return refused
