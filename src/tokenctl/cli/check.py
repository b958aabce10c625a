"""``tokenctl check``: exit 0 / 10 / 11 for CI jobs that watch token expiry."""

from __future__ import annotations

import typer

from tokenctl.cli.common import JSON_OPTION, app_context, definition_option, ref_argument


def command(
    ctx: typer.Context,
    refs: list[str] = ref_argument(None, help="Tokens to check (default: every effective one)."),
    within: str | None = typer.Option(
        None,
        "--within",
        metavar="DURATION",
        help="Report what expires within this duration (default: 7d or "
        "config.toml's expiring_window).",
    ),
    probe: bool = typer.Option(False, "--probe", help="Also ask each provider (catches revoked)."),
    definition: str | None = definition_option("--definition", help="Only this definition."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print nothing; use the exit code."),
    no_notify: bool = typer.Option(
        False, "--no-notify", help="Send no webhook notices (see `tokenctl notify`)."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Check effective tokens: 0 all fine, 10 some expiring, 11 some expired/invalid/missing."""
    from tokenctl.render.check import render_check
    from tokenctl.services.check import run_check
    from tokenctl.timeutil import parse_duration

    app_ctx = app_context(ctx)
    report = run_check(
        app_ctx,
        refs or (),
        within=parse_duration(within) if within else None,
        definition=definition,
        probe=probe,
        notify=not no_notify,
    )
    if not quiet:
        render_check(app_ctx.io, report, as_json=as_json)
    if report.exit_code:
        raise typer.Exit(int(report.exit_code))
