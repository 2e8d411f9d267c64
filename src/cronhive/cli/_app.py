"""The root click group and the exit-code convention shared by every verb."""

from __future__ import annotations

import sys

import click

from cronhive import __version__
from cronhive.errors import CronhiveError, InvalidInput, NotFound

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="cronhive")
def cli() -> None:
    """cronhive: a distributed cron. Schedules fire exactly once, on any node."""


def fail(message: str, code: int = EXIT_FAILURE) -> None:
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
        cli(standalone_mode=True)
    except CronhiveError as exc:
        fail(str(exc), exit_code_for(exc))
