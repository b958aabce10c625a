"""``tokenctl renew``: give a token a new secret."""

from __future__ import annotations

import typer

from tokenctl.cli.common import app_context


def command(
    ctx: typer.Context,
    ref: str = typer.Argument(..., help="Number, name or authentication code."),
    secret_stdin: bool = typer.Option(
        False, "--secret-stdin", help="Read the new pass code from stdin."
    ),
    expires_at: str | None = typer.Option(
        None, "--expires-at", help="ISO 8601 time of the new one."
    ),
    expires_in: str | None = typer.Option(None, "--expires-in", help="Duration of the new one."),
) -> None:
    """Renew a hand-entered token with a new pass code (and expiry)."""
    from tokenctl.render.tokens import render_renewed
    from tokenctl.services.tokens import renew_static
    from tokenctl.timeutil import parse_duration, parse_time

    app_ctx = app_context(ctx)
    view = renew_static(
        app_ctx,
        ref,
        secret_from_stdin=secret_stdin,
        expires_at=parse_time(expires_at) if expires_at else None,
        expires_in=parse_duration(expires_in) if expires_in else None,
    )
    render_renewed(app_ctx.io, view)
