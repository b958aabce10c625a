"""``tokenctl delete``: revoke at the provider, remove the secret and the record."""

from __future__ import annotations

import typer

from tokenctl.cli.common import app_context, ref_argument


def command(
    ctx: typer.Context,
    ref: str = ref_argument(),
    yes: bool = typer.Option(
        False,
        "--yes",
        "-y",
        help="Do not ask anything (no confirmation, no offer to retrieve a new token).",
    ),
    no_revoke: bool = typer.Option(
        False, "--no-revoke", help="Do not revoke the token at the provider."
    ),
) -> None:
    """Delete a token and print the command that retrieves a new one.

    On a terminal, offer to run that command at once.
    """
    from tokenctl.render.tokens import render_added, render_deleted
    from tokenctl.services.tokens import delete_token, offer_retrieval

    app_ctx = app_context(ctx)
    deleted = delete_token(app_ctx, ref, assume_yes=yes, revoke=not no_revoke)
    render_deleted(app_ctx.io, deleted)
    if yes:  # --yes: no questions at all; the printed command stays
        return
    added = offer_retrieval(app_ctx, deleted)
    if added is not None:
        render_added(app_ctx.io, added, as_json=False)
