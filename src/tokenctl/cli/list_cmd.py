"""``tokenctl list``: the overview of every token."""

from __future__ import annotations

import typer

from tokenctl.cli.common import JSON_OPTION, app_context, definition_option
from tokenctl.models import LifecycleState, Status


def command(
    ctx: typer.Context,
    as_json: bool = JSON_OPTION,
    status: list[Status] = typer.Option(
        [], "--status", help="Only tokens with this status (repeatable).", metavar="STATUS"
    ),
    definition: str | None = definition_option("--definition", help="Only this definition."),
    state: LifecycleState | None = typer.Option(
        None, "--state", help="Only this life-cycle state.", metavar="STATE"
    ),
) -> None:
    """List every token: number, name, type, description, account, status, expiry, state."""
    from tokenctl.render.tokens import render_listing
    from tokenctl.services.tokens import list_tokens

    app_ctx = app_context(ctx)
    listing = list_tokens(app_ctx, statuses=set(status), definition=definition, state=state)
    render_listing(app_ctx.io, listing, as_json=as_json)
