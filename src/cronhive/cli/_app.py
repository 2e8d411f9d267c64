"""The root click group, its connection flags, and the exit-code convention of every verb."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NoReturn

import click

from cronhive import __version__
from cronhive.errors import CronhiveError, InvalidInput, NotFound

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report Ctrl-C


class Aliased(click.Group):
    """A group where a command may answer to a second name (`logs` / `output`)."""

    aliases: dict[str, str] = {"output": "logs"}

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return super().get_command(ctx, self.aliases.get(cmd_name, cmd_name))

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        _, cmd, rest = super().resolve_command(ctx, args)
        return (cmd.name if cmd else None), cmd, rest


@click.group(cls=Aliased, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="cronhive")
@click.option(
    "--server",
    metavar="HOST:PORT",
    help="Node to talk to [$CRONHIVE_SERVER, client.toml, 127.0.0.1:7433].",
)
@click.option(
    "--certs",
    type=click.Path(path_type=Path, file_okay=False),
    help="Folder with ca.crt and NAME.crt/.key [$CRONHIVE_CERTS, client.toml, ./.cronhive/certs].",
)
@click.option(
    "--as",
    "cert_name",
    metavar="NAME",
    help="Which client certificate in --certs to present [client.toml, admin].",
)
@click.pass_context
def cli(ctx: click.Context, server: str | None, certs: Path | None, cert_name: str | None) -> None:
    """cronhive: a distributed cron. Schedules fire exactly once, on any node."""
    from cronhive.cli._connect import Flags  # the connection module is only for client verbs

    ctx.obj = Flags(server=server, certs=certs, cert_name=cert_name)


def fail(message: str, code: int = EXIT_FAILURE) -> NoReturn:
    """Prints one line on stderr and exits with `code`."""
    click.echo(f"cronhive: {message}", err=True)
    sys.exit(code)


def exit_code_for(exc: CronhiveError) -> int:
    if isinstance(exc, InvalidInput):
        return EXIT_USAGE
    if isinstance(exc, NotFound):
        return EXIT_NOT_FOUND
    return EXIT_FAILURE


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as exc:
        click.echo(exc.format_message(), err=True)  # `cronhive` alone: the help
        sys.exit(EXIT_USAGE)
    except click.UsageError as exc:
        # One line, as every other error (click's own form is three).
        where = exc.ctx.command_path if exc.ctx is not None else "cronhive"
        fail(f"{exc.format_message().rstrip('.')}; see {where} --help", EXIT_USAGE)
    except click.ClickException as exc:
        fail(exc.format_message(), exc.exit_code)
    except click.Abort:
        fail("aborted", EXIT_INTERRUPTED)
    except CronhiveError as exc:
        fail(str(exc), exit_code_for(exc))
