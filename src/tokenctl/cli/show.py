"""``tokenctl show``: every field of one token, its log information and history."""

from __future__ import annotations

import typer

from tokenctl.cli.common import JSON_OPTION, app_context, ref_argument


def command(
    ctx: typer.Context,
    ref: str = ref_argument(),
    probe: bool = typer.Option(
        False, "--probe", help="Ask the provider whether the token still works, and record it."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Show one token; secrets are never shown."""
    from tokenctl.render.tokens import render_detail
    from tokenctl.services.tokens import show_token

    app_ctx = app_context(ctx)
    render_detail(app_ctx.io, show_token(app_ctx, ref, probe=probe), as_json=as_json)
