"""``tokenctl renew``: refresh without a browser, log in again, or enter a new pass code."""

from __future__ import annotations

import typer

from tokenctl.cli import login_options as opts
from tokenctl.cli.common import JSON_OPTION, app_context


def command(
    ctx: typer.Context,
    ref: str = typer.Argument(..., help="Number, name or authentication code."),
    login: bool = typer.Option(
        False, "--login", help="OAuth: log in with the browser instead of refreshing."
    ),
    allow_account_change: bool = typer.Option(
        False, "--allow-account-change", help="Accept a login as another account than before."
    ),
    no_browser: bool = opts.NO_BROWSER,
    device: bool = opts.DEVICE,
    paste: bool = opts.PASTE,
    reuse_session: bool = opts.REUSE_SESSION,
    timeout: float = opts.TIMEOUT,
    yes: bool = opts.YES,
    secret_stdin: bool = typer.Option(
        False, "--secret-stdin", help="Static tokens: read the new pass code from stdin."
    ),
    expires_at: str | None = typer.Option(
        None, "--expires-at", help="Static tokens: ISO 8601 time of the new one."
    ),
    expires_in: str | None = typer.Option(
        None, "--expires-in", help="Static tokens: duration of the new one."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Renew a token: refresh it, log in again (--login), or store a new pass code."""
    from tokenctl.render.tokens import render_renewed
    from tokenctl.services.tokens import renew_token
    from tokenctl.timeutil import parse_duration, parse_time

    app_ctx = app_context(ctx)
    options = opts.login_options(
        no_browser=no_browser,
        device=device,
        paste=paste,
        reuse_session=reuse_session,
        timeout=timeout,
        yes=yes,
    )
    result = renew_token(
        app_ctx,
        ref,
        login=options,
        force_login=login or device or paste,
        allow_account_change=allow_account_change,
        secret_from_stdin=secret_stdin,
        expires_at=parse_time(expires_at) if expires_at else None,
        expires_in=parse_duration(expires_in) if expires_in else None,
    )
    render_renewed(app_ctx.io, result, as_json=as_json)
