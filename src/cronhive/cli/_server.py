"""`cronhive server`: starts one node (the composition root lives in cronhive.node)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import click

from cronhive.cli._app import EXIT_USAGE, cli, fail
from cronhive.errors import CronhiveError, InvalidInput


@cli.command()
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="TOML file whose keys are these options' names.",
)
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Where the SQLite file, spool and dev certificates live [./.cronhive].",
)
@click.option("--db", help="Database URL: sqlite:///FILE or postgresql://USER@HOST/DB.")
@click.option(
    "--listen",
    envvar="CRONHIVE_LISTEN",
    help="API address, HOST:PORT [$CRONHIVE_LISTEN, 127.0.0.1:7433].",
)
@click.option(
    "--web",
    envvar="CRONHIVE_WEB",
    help="Web UI address, HOST:PORT [$CRONHIVE_WEB, 127.0.0.1:7434].",
)
@click.option(
    "--metrics",
    envvar="CRONHIVE_METRICS",
    metavar="HOST:PORT",
    help="Plain-HTTP address of /metrics, /healthz and /readyz, e.g. 127.0.0.1:9464 "
    "[$CRONHIVE_METRICS, off].",
)
@click.option("--name", help="Node name [the host name].")
@click.option("--tags", help="Comma-separated tags; runs go only to nodes with their tags.")
@click.option("--capacity", type=int, help="Runs this node takes at once [16].")
@click.option(
    "--drain-grace",
    type=float,
    help="At SIGTERM, seconds runs have to end before they are handed over [10].",
)
@click.option(
    "--db-wait",
    metavar="DURATION",
    help="How long to wait for the database at start: 30s, 5m, or forever [forever].",
)
@click.option(
    "--certs",
    "certs_dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Certificates folder (ca.crt, server.crt/key) [DATA_DIR/certs, generated].",
)
@click.option(
    "--policy",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Policy file (roles, groups, run_as grants).",
)
@click.option(
    "--isolation",
    type=click.Choice(["bwrap", "none"]),
    help="How runs are isolated from the node [bwrap]; none runs them as the node's own "
    "processes (see docs/security.md).",
)
@click.option(
    "--blobs",
    envvar="CRONHIVE_BLOBS",
    type=click.Choice(["local", "s3"]),
    help="Where scripts and archived output live [$CRONHIVE_BLOBS, local]; see docs/blobs.md.",
)
@click.option(
    "--blobs-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="The local blob directory [DATA_DIR/blobs].",
)
@click.option("--s3-endpoint", envvar="CRONHIVE_S3_ENDPOINT", help="S3 endpoint URL [AWS].")
@click.option("--s3-bucket", envvar="CRONHIVE_S3_BUCKET", help="S3 bucket.")
@click.option("--s3-prefix", envvar="CRONHIVE_S3_PREFIX", help="Key prefix in the bucket.")
@click.option("--s3-region", envvar="CRONHIVE_S3_REGION", help="S3 region.")
@click.option("--run-user", help="On a root node, whom runs without run_as run as [nobody].")
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
)
def server(config_file: Path | None, log_level: str, **flags: object) -> None:
    """Start a node: scheduler, worker, reaper and the API, until SIGTERM or Ctrl-C."""
    from cronhive.config import load_server_config
    from cronhive.node import serve

    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if flags.get("data_dir") is None and (config_file is None):
        flags["data_dir"] = Path(".cronhive")
    try:
        config = load_server_config(config_file, **flags)
        asyncio.run(serve(config, hide=(config_file,) if config_file else ()))
    except InvalidInput as exc:
        fail(str(exc), EXIT_USAGE)
    except CronhiveError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        pass
