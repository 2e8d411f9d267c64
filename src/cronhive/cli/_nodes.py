"""`nodes` (and `nodes --wait`, for scripts that start a node in the background) and
`completion` (click's shell completion script)."""

from __future__ import annotations

import asyncio
import ssl
import time

import click
from grpclib.const import Status
from grpclib.exceptions import GRPCError, StreamTerminatedError

from cronhive.api._generated.cronhive.v1 import cronhive_pb2 as pb
from cronhive.cli._app import cli, fail
from cronhive.cli._connect import Target, Unusable, call_target, open_client
from cronhive.cli._output import echo_json, node_dict, paint, table, when

_RETRY_EVERY = 0.2


async def _list_when_ready(target: Target, wait: float) -> list[pb.Node]:
    """The nodes; with `wait`, retries while the certificates are not there yet, the
    server cannot be reached, or no node is alive, until `wait` seconds have passed."""
    deadline = time.monotonic() + wait
    while True:
        try:
            async with await open_client(target) as client:
                reply = await client.nodes.List(pb.ListNodesRequest())
            if wait <= 0 or any(n.alive for n in reply.nodes):
                return list(reply.nodes)
            problem = "no live node yet"
        except GRPCError as exc:
            if wait <= 0 or exc.status is not Status.UNAVAILABLE:
                raise
            problem = exc.message or "unavailable"
        except (Unusable, OSError, ssl.SSLError, StreamTerminatedError) as exc:
            if wait <= 0:
                raise
            problem = str(exc) or type(exc).__name__
        if time.monotonic() >= deadline:
            fail(f"{target.describe()} not ready after {wait:g}s: {problem}")
        await asyncio.sleep(_RETRY_EVERY)


@cli.command()
@click.option(
    "--wait",
    type=click.FloatRange(0, 3600),
    default=0,
    metavar="SECONDS",
    help="Retry until the server answers and a node is alive, for up to SECONDS.",
)
@click.option("--json", "as_json", is_flag=True, help="JSON with stable keys.")
@click.pass_context
def nodes(ctx: click.Context, wait: float, as_json: bool) -> None:
    """List the nodes: alive or not, tags, runs in progress of capacity.

    \b
    cronhive server & cronhive nodes --wait 30    # returns once the node serves
    """

    async def body(target: Target) -> list[pb.Node]:
        return await _list_when_ready(target, wait)

    found = call_target(ctx, body)
    if as_json:
        echo_json([node_dict(n) for n in found])
        return
    rows = []
    for n in found:
        d = node_dict(n)
        state = d["state"]
        rows.append(
            [
                n.name,
                paint(state, "succeeded" if n.alive else "failed"),
                f"{n.running}/{n.capacity}",
                ",".join(n.tags) or "-",
                when(d["started_at"]),
                when(d["heartbeat_at"]),
                n.id,
            ]
        )
    table(["NAME", "STATE", "RUNNING", "TAGS", "STARTED", "HEARTBEAT", "ID"], rows)


@cli.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the shell completion script for SHELL.

    \b
    eval "$(cronhive completion bash)"       # in ~/.bashrc
    cronhive completion fish > ~/.config/fish/completions/cronhive.fish
    """
    from click.shell_completion import get_completion_class

    completer = get_completion_class(shell)
    if completer is None:  # click.Choice above admits only shells click knows
        fail(f"no completion for {shell}")
    click.echo(completer(cli, {}, "cronhive", "_CRONHIVE_COMPLETE").source())
