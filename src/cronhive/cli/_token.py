"""`token create|ls|revoke`: personal access tokens for the web UI and its JSON API.

Tokens belong to the user of the client certificate (`--as`); the server keeps only a
digest, so `create` prints the token once, on stdout alone (for `$(...)` and pipes).
"""

from __future__ import annotations

from typing import Any

import click

from cronhive.api._generated.cronhive.v1 import cronhive_pb2 as pb
from cronhive.api.client import Client
from cronhive.api.shapes import shape
from cronhive.cli._app import cli
from cronhive.cli._connect import Target, call
from cronhive.cli._output import echo_json, table, when


def token_dict(t: pb.Token) -> dict[str, Any]:
    """The stable JSON keys of a token (api.shapes; absent instants are null)."""
    return shape(t)


@cli.group()
def token() -> None:
    """Personal access tokens: sign in to the web UI, call its JSON API."""


@token.command("create")
@click.option("--name", default="", help="A name to revoke it by [token-<id>].")
@click.option(
    "--days",
    type=click.IntRange(0, 3650),
    default=None,
    help="Expires after DAYS; 0 = never [90].",
)
@click.pass_context
def create(ctx: click.Context, name: str, days: int | None) -> None:
    """Create a token and print it (once: only its digest is kept).

    \b
    cronhive token create --name laptop --days 30
    """

    async def body(client: Client, _: Target) -> pb.CreateTokenResponse:
        req = pb.CreateTokenRequest(name=name)
        if days is not None:
            req.days = days
        reply: pb.CreateTokenResponse = await client.tokens.Create(req)
        return reply

    reply = call(ctx, body)
    click.echo(reply.text)
    expires_at = token_dict(reply.token)["expires_at"]
    expires = when(expires_at) if expires_at else "never"
    click.echo(
        f"token {reply.token.name} ({reply.token.id}), expires {expires}; it is shown only now",
        err=True,
    )


@token.command("ls")
@click.option("--json", "as_json", is_flag=True, help="JSON with stable keys.")
@click.pass_context
def ls(ctx: click.Context, as_json: bool) -> None:
    """List your tokens, revoked and expired ones too."""

    async def body(client: Client, _: Target) -> list[pb.Token]:
        reply: pb.ListTokensResponse = await client.tokens.List(pb.ListTokensRequest())
        return list(reply.tokens)

    found = call(ctx, body)
    if as_json:
        echo_json([token_dict(t) for t in found])
        return
    rows = []
    for t in found:
        d = token_dict(t)
        state = "revoked" if d["revoked_at"] else "live"
        rows.append(
            [
                t.name,
                state,
                when(d["created_at"]),
                when(d["expires_at"]) if d["expires_at"] else "never",
                when(d["last_used_at"]),
                t.id,
            ]
        )
    table(["NAME", "STATE", "CREATED", "EXPIRES", "LAST USED", "ID"], rows)


@token.command("revoke")
@click.argument("ref", metavar="ID|NAME")
@click.pass_context
def revoke(ctx: click.Context, ref: str) -> None:
    """Revoke a token by id or name; its web sessions end at once."""

    async def body(client: Client, _: Target) -> pb.Token:
        reply: pb.Token = await client.tokens.Revoke(pb.RevokeTokenRequest(token=ref))
        return reply

    done = call(ctx, body)
    click.echo(f"revoked {done.name} ({done.id})")
