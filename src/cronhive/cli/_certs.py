"""`cronhive certs init|issue|server`: a private CA, server certificates, client certificates."""

from __future__ import annotations

import os
from pathlib import Path

import click

from cronhive.auth._paths import default_ca_dir, validate_name
from cronhive.cli._app import EXIT_FAILURE, EXIT_USAGE, cli, fail
from cronhive.errors import Conflict, InvalidInput

ADMINS_GROUP = "admins"  # the default policy makes this group admin


def _default_dir() -> Path:
    return Path(os.environ.get("CRONHIVE_CERTS") or Path(".cronhive") / "certs")


def _ca_dir(ca_dir: Path | None, directory: Path) -> Path:
    env = os.environ.get("CRONHIVE_CA")
    return ca_dir or (Path(env) if env else default_ca_dir(directory))


_dir_option = click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Certificate directory [default: $CRONHIVE_CERTS or ./.cronhive/certs].",
)
_ca_dir_option = click.option(
    "--ca-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the CA and its key live, never on a node "
    "[default: $CRONHIVE_CA, else beside DIR: X/certs -> X-ca, D -> D-ca].",
)


@cli.group()
def certs() -> None:
    """Create a CA and issue server and client certificates."""


@certs.command("init")
@_dir_option
@_ca_dir_option
@click.option("--name", "names", multiple=True, help="DNS name for the server (repeatable).")
@click.option("--ip", "ips", multiple=True, help="IP address for the server (repeatable).")
@click.option("--days", type=int, default=825, show_default=True, help="Validity in days.")
@click.option("--force", is_flag=True, help="Replace an existing CA and its certificates.")
def init(
    directory: Path | None,
    ca_dir: Path | None,
    names: tuple[str, ...],
    ips: tuple[str, ...],
    days: int,
    force: bool,
) -> None:
    """Create a CA (in its own directory), a server certificate and an `admin` client
    certificate.

    Nodes need only DIR's ca.crt, server.crt and server.key; the CA directory stays on the
    machine that issues certificates. Without --name/--ip the server certificate covers
    localhost, this host name, 127.0.0.1 and ::1.
    """
    from cronhive.auth.certs import init_certs  # cryptography: only for this command

    directory = directory or _default_dir()
    ca_dir = _ca_dir(ca_dir, directory)
    try:
        paths = init_certs(
            directory, ca_dir=ca_dir, dns_names=names, ip_addresses=ips, days=days, force=force
        )
    except (InvalidInput, Conflict) as exc:  # both fixed by changing the command line
        fail(str(exc), EXIT_USAGE)
    except OSError as exc:
        fail(f"{directory}: {exc.strerror}", EXIT_FAILURE)
    click.echo(f"server and admin certificates written to {paths.dir}")
    click.echo(f"CA written to {paths.ca_home}: keep it off the nodes and secret")
    click.echo("(whoever holds ca.key can become any user)")


@certs.command("issue")
@click.argument("name")
@_dir_option
@_ca_dir_option
@click.option("--group", "groups", multiple=True, help="Group (certificate OU), repeatable.")
@click.option("--days", type=int, default=365, show_default=True, help="Validity in days.")
@click.option("--admin", is_flag=True, help=f"Add the group {ADMINS_GROUP!r} (admin by default).")
@click.option("--force", is_flag=True, help="Replace an existing certificate for NAME.")
def issue(
    name: str,
    directory: Path | None,
    ca_dir: Path | None,
    groups: tuple[str, ...],
    days: int,
    admin: bool,
    force: bool,
) -> None:
    """Issue a client certificate for user NAME (subject CN=NAME, one OU per group)."""
    from cronhive.auth.certs import issue_client_files  # cryptography: only for this command

    directory = directory or _default_dir()
    try:
        validate_name(name, field="NAME")
        all_groups = {*groups, ADMINS_GROUP} if admin else set(groups)
        cert, key = issue_client_files(
            directory,
            ca_dir=_ca_dir(ca_dir, directory),
            user=name,
            groups=all_groups,
            days=days,
            force=force,
        )
    except (InvalidInput, Conflict) as exc:  # both fixed by changing the command line
        fail(str(exc), EXIT_USAGE)
    except OSError as exc:
        fail(f"{directory}: {exc.strerror}", EXIT_FAILURE)
    click.echo(f"{cert}\n{key}")


@certs.command("server")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@_dir_option
@_ca_dir_option
@click.option("--name", "names", multiple=True, help="DNS name of the node (repeatable).")
@click.option("--ip", "ips", multiple=True, help="IP address of the node (repeatable).")
@click.option("--days", type=int, default=825, show_default=True, help="Validity in days.")
@click.option("--force", is_flag=True, help="Replace an existing server certificate in OUT.")
def server_cert(
    out: Path,
    directory: Path | None,
    ca_dir: Path | None,
    names: tuple[str, ...],
    ips: tuple[str, ...],
    days: int,
    force: bool,
) -> None:
    """Issue one node's server certificate into OUT (ca.crt, server.crt, server.key):
    the folder to copy to that node as its `certs_dir`.

    \b
    cronhive certs server ./node3 --name node3.internal --name cron.internal --ip 10.0.0.7
    """
    from cronhive.auth.certs import issue_server_files  # cryptography: only for this command

    directory = directory or _default_dir()
    try:
        paths = issue_server_files(
            out,
            directory=directory,
            ca_dir=_ca_dir(ca_dir, directory),
            dns_names=names,
            ip_addresses=ips,
            days=days,
            force=force,
        )
    except (InvalidInput, Conflict) as exc:
        fail(str(exc), EXIT_USAGE)
    except OSError as exc:
        fail(f"{out}: {exc.strerror}", EXIT_FAILURE)
    click.echo(f"{paths.ca_cert}\n{paths.server_cert}\n{paths.server_key}")
