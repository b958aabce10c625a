"""``tokenctl renew``: refresh without a browser, log in again, or enter a new pass code."""

from __future__ import annotations

from typing import Any

import typer

from tokenctl.cli import login_options as opts
from tokenctl.cli.common import JSON_OPTION, app_context, definition_option, ref_argument
from tokenctl.context import AppContext
from tokenctl.errors import ExitCode, UsageError


def command(
    ctx: typer.Context,
    ref: str | None = ref_argument(None),
    all_tokens: bool = typer.Option(
        False, "--all", help="Refresh every effective OAuth token, concurrently, no browser."
    ),
    within: str | None = typer.Option(
        None,
        "--within",
        metavar="DURATION",
        help="With --all: only tokens whose access token expires within this.",
    ),
    definition: str | None = definition_option(
        "--definition", help="With --all: only tokens of this definition."
    ),
    concurrency: int = typer.Option(
        8,
        "--concurrency",
        min=1,
        max=64,
        metavar="N",
        help="With --all: refreshes at once (overall).",
    ),
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
    relay: bool = opts.RELAY,
    tenant: str | None = opts.TENANT,
    yes: bool = opts.YES,
    secret_stdin: bool = typer.Option(
        False, "--secret-stdin", help="Static tokens: read the new pass code from stdin."
    ),
    expires_at: str | None = typer.Option(
        None, "--expires-at", help="Static tokens: ISO 8601 time of the new one.", metavar="TIME"
    ),
    expires_in: str | None = typer.Option(
        None, "--expires-in", help="Static tokens: duration of the new one.", metavar="DURATION"
    ),
    no_notify: bool = typer.Option(
        False, "--no-notify", help="With --all: send no webhook notices (`tokenctl notify`)."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Renew a token: refresh it, log in again (--login), or store a new pass code."""
    from tokenctl.render.tokens import render_renewed
    from tokenctl.services.tokens import renew_token
    from tokenctl.timeutil import parse_duration, parse_time

    app_ctx = app_context(ctx)
    if all_tokens:
        others = (
            secret_stdin,
            expires_at,
            expires_in,
            tenant,
            no_browser,
            reuse_session,
            allow_account_change,
        )
        if ref is not None or login or device or paste or relay or any(others):
            raise UsageError(
                "--all refreshes without a browser and takes no REF and no login or "
                "pass-code flags",
                hint="with --all use only --within, --definition, --concurrency, --no-notify "
                "and --json",
            )
        _renew_all(app_ctx, within, definition, concurrency, as_json, notify=not no_notify)
        return
    if ref is None:
        raise UsageError("give a token (REF) or --all")
    if no_notify:
        raise UsageError(
            "--no-notify applies to --all: renewing one token sends no webhook notices",
            hint="drop --no-notify",
        )
    options = opts.login_options(
        no_browser=no_browser,
        device=device,
        paste=paste,
        reuse_session=reuse_session,
        timeout=timeout,
        yes=yes,
        relay=relay,
        tenant=tenant,
    )
    result = renew_token(
        app_ctx,
        ref,
        login=options,
        force_login=login or device or paste or relay,
        allow_account_change=allow_account_change,
        secret_from_stdin=secret_stdin,
        expires_at=parse_time(expires_at) if expires_at else None,
        expires_in=parse_duration(expires_in) if expires_in else None,
    )
    render_renewed(app_ctx.io, result, as_json=as_json)


def _renew_all(
    app_ctx: AppContext,
    within: str | None,
    definition: str | None,
    concurrency: int,
    as_json: bool,
    *,
    notify: bool,
) -> None:
    from tokenctl.render.check import render_bulk, render_bulk_item
    from tokenctl.services.renew_all import renew_all
    from tokenctl.timeutil import parse_duration

    io = app_ctx.io
    progress = None
    task = None
    if io.stderr_tty:
        from rich.progress import Progress

        progress = Progress(console=io.err, transient=True)
        progress.start()

    def started(total: int) -> None:
        nonlocal task
        if progress is not None:
            task = progress.add_task("Refreshing", total=total)

    def done(item: Any) -> None:
        if progress is not None and task is not None:
            progress.advance(task)
        else:
            render_bulk_item(io, item)

    try:
        report = renew_all(
            app_ctx,
            within=parse_duration(within) if within else None,
            definition=definition,
            concurrency=concurrency,
            on_start=started,
            on_done=done,
            notify=notify,
        )
    finally:
        if progress is not None:
            progress.stop()
    render_bulk(io, report, as_json=as_json)
    if not report.ok:
        raise typer.Exit(int(ExitCode.ERROR))
