"""``tokenctl delete``: revoke at the provider, remove the secret and the record."""

from __future__ import annotations

import typer

from tokenctl.cli.common import app_context


def command(
    ctx: typer.Context,
    ref: str = typer.Argument(..., help="Number, name or authentication code."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    no_revoke: bool = typer.Option(
        False, "--no-revoke", help="Do not revoke the token at the provider."
    ),
) -> None:
    """Delete a token and print the command that retrieves a new one."""
    from tokenctl.render.tokens import render_deleted
    from tokenctl.services.tokens import delete_token

    app_ctx = app_context(ctx)
    render_deleted(app_ctx.io, delete_token(app_ctx, ref, assume_yes=yes, revoke=not no_revoke))
