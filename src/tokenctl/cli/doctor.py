"""``tokenctl doctor``: check paths, keyring, definitions and inventory."""

from __future__ import annotations

import typer

from tokenctl.cli.common import JSON_OPTION, app_context


def command(
    ctx: typer.Context,
    as_json: bool = JSON_OPTION,
    remove_orphans: bool = typer.Option(
        False,
        "--remove-orphans",
        help="Remove keyring entries no record points to, revoking their grants where "
        "possible (on a terminal doctor asks).",
    ),
) -> None:
    """Report what works and what is broken; non-zero exit when something is."""
    from tokenctl.render.doctor import render_doctor
    from tokenctl.services.doctor import run_doctor

    app_ctx = app_context(ctx)
    report = run_doctor(app_ctx, remove_orphans=remove_orphans)
    render_doctor(app_ctx.io, report, as_json=as_json)
    if not report.ok:
        raise typer.Exit(int(report.exit_code))
