"""`cronhive certs init|issue`: a private CA, a server certificate, client certificates."""

from __future__ import annotations

import os
from pathlib import Path

import click

from cronhive.auth.certs import init_certs, issue_client_files, validate_name
from cronhive.cli._app import EXIT_FAILURE, EXIT_USAGE, cli, fail
from cronhive.errors import Conflict, InvalidInput

ADMINS_GROUP = "admins"  # the default policy makes this group admin


def _default_dir() -> Path:
    return Path(os.environ.get("CRONHIVE_CERTS") or Path(".cronhive") / "certs")


_dir_option = click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Certificate directory [default: $CRONHIVE_CERTS or ./.cronhive/certs].",
)


@cli.group()
def certs() -> None:
    """Create a CA and issue server and client certificates."""


@certs.command("init")
@_dir_option
@click.option("--name", "names", multiple=True, help="DNS name for the server (repeatable).")
@click.option("--ip", "ips", multiple=True, help="IP address for the server (repeatable).")
@click.option("--days", type=int, default=825, show_default=True, help="Validity in days.")
@click.option("--force", is_flag=True, help="Replace an existing CA and its certificates.")
def init(
    directory: Path | None, names: tuple[str, ...], ips: tuple[str, ...], days: int, force: bool
) -> None:
    """Create a CA, a server certificate and an `admin` client certificate.

    Without --name/--ip the server certificate covers localhost, this host name,
    127.0.0.1 and ::1.
    """
    directory = directory or _default_dir()
    try:
        paths = init_certs(directory, dns_names=names, ip_addresses=ips, days=days, force=force)
    except (InvalidInput, Conflict) as exc:  # both fixed by changing the command line
        fail(str(exc), EXIT_USAGE)
    except OSError as exc:
        fail(f"{directory}: {exc.strerror}", EXIT_FAILURE)
    click.echo(f"CA, server and admin certificates written to {paths.dir}")
    click.echo("keep ca.key secret: whoever holds it can become any user")


@certs.command("issue")
@click.argument("name")
@_dir_option
@click.option("--group", "groups", multiple=True, help="Group (certificate OU), repeatable.")
@click.option("--days", type=int, default=365, show_default=True, help="Validity in days.")
@click.option("--admin", is_flag=True, help=f"Add the group {ADMINS_GROUP!r} (admin by default).")
@click.option("--force", is_flag=True, help="Replace an existing certificate for NAME.")
def issue(
    name: str,
    directory: Path | None,
    groups: tuple[str, ...],
    days: int,
    admin: bool,
    force: bool,
) -> None:
    """Issue a client certificate for user NAME (subject CN=NAME, one OU per group)."""
    directory = directory or _default_dir()
    try:
        validate_name(name, field="NAME")
        all_groups = {*groups, ADMINS_GROUP} if admin else set(groups)
        cert, key = issue_client_files(
            directory, user=name, groups=all_groups, days=days, force=force
        )
    except (InvalidInput, Conflict) as exc:  # both fixed by changing the command line
        fail(str(exc), EXIT_USAGE)
    except OSError as exc:
        fail(f"{directory}: {exc.strerror}", EXIT_FAILURE)
    click.echo(f"{cert}\n{key}")
