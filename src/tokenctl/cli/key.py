"""``tokenctl key``: status, rotation and reset of the inventory's data key."""

from __future__ import annotations

import typer

from tokenctl.cli.common import JSON_OPTION, app_context


def status_command(ctx: typer.Context, as_json: bool = JSON_OPTION) -> None:
    """Show the data key's keyring entry, its version and what it protects."""
    from tokenctl.render.keys import render_key_status
    from tokenctl.services.keys import key_status, summary_problem

    app_ctx = app_context(ctx)
    summary = key_status(app_ctx)
    render_key_status(app_ctx.io, summary, as_json=as_json)
    if summary_problem(summary) is not None:
        raise typer.Exit(4)


def rotate_command(ctx: typer.Context, as_json: bool = JSON_OPTION) -> None:
    """Seal every secret under a new data key; safe to interrupt and run again."""
    from tokenctl.render.keys import render_rotation
    from tokenctl.services.keys import rotate_key

    app_ctx = app_context(ctx)
    render_rotation(app_ctx.io, rotate_key(app_ctx), as_json=as_json)


def reset_command(
    ctx: typer.Context,
    assume_yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Give up the secrets of a lost data key, so that new ones can be stored."""
    from tokenctl.render.keys import render_reset
    from tokenctl.services.keys import reset_key

    app_ctx = app_context(ctx)
    render_reset(app_ctx.io, reset_key(app_ctx, assume_yes=assume_yes), as_json=as_json)


def build() -> typer.Typer:
    """The ``key`` sub-application."""
    group = typer.Typer(
        no_args_is_help=True,
        rich_markup_mode=None,
        help="The data key that encrypts every stored secret: status, rotation, reset.",
    )
    group.command("status")(status_command)
    group.command("rotate")(rotate_command)
    group.command("reset")(reset_command)
    return group
