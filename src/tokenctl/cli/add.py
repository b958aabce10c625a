"""``tokenctl add``: register a token, by a hand-entered secret or an OAuth login."""

from __future__ import annotations

import typer

from tokenctl.cli import login_options as opts
from tokenctl.cli.common import JSON_OPTION, app_context, definition_option


def command(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Short unique name, e.g. acme-exact.", metavar="NAME"),
    definition: str = definition_option(
        "--definition", "-d", help="Definition (its type).", required=True
    ),
    description: str | None = typer.Option(
        None, "--description", help="The connection.", metavar="TEXT"
    ),
    identifier: str | None = typer.Option(
        None, "--identifier", help="Identifier (user, client).", metavar="ID"
    ),
    code: str | None = typer.Option(
        None, "--code", help="Authentication code; generated when left out.", metavar="CODE"
    ),
    expires_at: str | None = typer.Option(
        None, "--expires-at", help="ISO 8601 time (UTC default).", metavar="TIME"
    ),
    expires_in: str | None = typer.Option(
        None, "--expires-in", help="Duration: 90s, 12h, 30d, 2w.", metavar="DURATION"
    ),
    secret_stdin: bool = typer.Option(
        False, "--secret-stdin", help="Read the pass code from stdin instead of a hidden prompt."
    ),
    no_login: bool = typer.Option(
        False, "--no-login", help="OAuth: record the token now, log in later with renew --login."
    ),
    no_browser: bool = opts.NO_BROWSER,
    device: bool = opts.DEVICE,
    paste: bool = opts.PASTE,
    reuse_session: bool = opts.REUSE_SESSION,
    timeout: float = opts.TIMEOUT,
    param: list[str] = typer.Option(
        [],
        "--param",
        help="A value for the definition's placeholders (repeatable).",
        metavar="KEY=VALUE",
    ),
    relay: bool = opts.RELAY,
    tenant: str | None = opts.TENANT,
    yes: bool = opts.YES,
    as_json: bool = JSON_OPTION,
) -> None:
    """Add a token: a pass code from stdin or a hidden prompt, or an OAuth browser login."""
    from tokenctl.render.tokens import render_added
    from tokenctl.services.tokens import AddRequest, add_token
    from tokenctl.timeutil import parse_duration, parse_time

    app_ctx = app_context(ctx)
    login = (
        None
        if no_login
        else opts.login_options(
            no_browser=no_browser,
            device=device,
            paste=paste,
            reuse_session=reuse_session,
            timeout=timeout,
            yes=yes,
            relay=relay,
            tenant=tenant,
        )
    )
    request = AddRequest(
        name=name,
        definition=definition,
        description=description,
        identifier=identifier,
        authentication_code=code,
        expires_at=parse_time(expires_at) if expires_at else None,
        expires_in=parse_duration(expires_in) if expires_in else None,
        secret_from_stdin=secret_stdin,
        login=login,
        params=_params(param),
    )
    render_added(app_ctx.io, add_token(app_ctx, request), as_json=as_json)


def _params(pairs: list[str]) -> dict[str, str]:
    from tokenctl.errors import UsageError

    params: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise UsageError(f"invalid --param {pair!r}", hint="write --param KEY=VALUE")
        params[key.strip()] = value.strip()
    return params
