"""``tokenctl check``: exit 0 / 10 / 11 for CI jobs that watch token expiry."""

from __future__ import annotations

from enum import StrEnum

import typer

from tokenctl.cli.common import JSON_OPTION, app_context, definition_option, ref_argument
from tokenctl.errors import UsageError


class CheckFormat(StrEnum):
    """What ``check`` writes to stdout."""

    TEXT = "text"
    JSON = "json"
    OPENMETRICS = "openmetrics"
    PROMETHEUS = "prometheus"


def _chosen_format(fmt: CheckFormat | None, *, as_json: bool, quiet: bool) -> CheckFormat:
    """``--format``, with ``--json`` as its short form ``--format json``; conflicts refused."""
    if as_json and fmt not in (None, CheckFormat.JSON):
        raise UsageError(
            f"--json and --format {fmt} ask for two different outputs",
            hint="--json is short for --format json: give only one of them",
        )
    chosen = CheckFormat.JSON if as_json else (fmt or CheckFormat.TEXT)
    if quiet and chosen in (CheckFormat.OPENMETRICS, CheckFormat.PROMETHEUS):
        # A metrics file written with --quiet would be empty: every series would vanish.
        raise UsageError(
            f"--quiet prints nothing, but --format {chosen} asks for the metrics",
            hint="drop --quiet; the exit code is the same with --format",
        )
    return chosen


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
    fmt: CheckFormat | None = typer.Option(
        None,
        "--format",
        metavar="FORMAT",
        help="text (default), json (= --json), openmetrics, or prometheus (for "
        "node_exporter's textfile collector); see docs/monitoring.md.",
    ),
) -> None:
    """Check effective tokens: 0 all fine, 10 some expiring, 11 some expired/invalid/missing."""
    from tokenctl.render.check import render_check
    from tokenctl.services.check import run_check
    from tokenctl.timeutil import parse_duration

    chosen = _chosen_format(fmt, as_json=as_json, quiet=quiet)
    app_ctx = app_context(ctx)
    report = run_check(
        app_ctx,
        refs or (),
        within=parse_duration(within) if within else None,
        definition=definition,
        probe=probe,
        notify=not no_notify,
    )
    if chosen in (CheckFormat.OPENMETRICS, CheckFormat.PROMETHEUS):
        from tokenctl.render.metrics import Exposition, render_check_metrics

        render_check_metrics(
            app_ctx.io,
            report,
            Exposition(chosen.value),
            account_label=app_ctx.config.metrics_account_label,
        )
    elif not quiet:
        render_check(app_ctx.io, report, as_json=chosen is CheckFormat.JSON)
    if report.exit_code:
        raise typer.Exit(int(report.exit_code))
