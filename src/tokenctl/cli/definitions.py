"""``tokenctl definitions``: list, show, add and remove definitions."""

from __future__ import annotations

from pathlib import Path

import typer

from tokenctl.cli.common import JSON_OPTION, app_context


def list_command(ctx: typer.Context, as_json: bool = JSON_OPTION) -> None:
    """List definitions grouped by classification."""
    if ctx.invoked_subcommand is not None:
        return
    from tokenctl.render.definitions import render_definition_list
    from tokenctl.services.definitions import list_definitions

    app_ctx = app_context(ctx)
    render_definition_list(app_ctx.io, list_definitions(app_ctx), as_json=as_json)


def list_subcommand(ctx: typer.Context, as_json: bool = JSON_OPTION) -> None:
    """List definitions grouped by classification (same as `tokenctl definitions`)."""
    from tokenctl.render.definitions import render_definition_list
    from tokenctl.services.definitions import list_definitions

    app_ctx = app_context(ctx)
    render_definition_list(app_ctx.io, list_definitions(app_ctx), as_json=as_json)


def show_command(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Definition name."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Show every field of one definition."""
    from tokenctl.render.definitions import render_definition
    from tokenctl.services.definitions import show_definition

    app_ctx = app_context(ctx)
    render_definition(app_ctx.io, show_definition(app_ctx, name), as_json=as_json)


def add_command(
    ctx: typer.Context,
    file: Path = typer.Option(
        ..., "--file", "-f", help="TOML file with [definitions.NAME] tables.", dir_okay=False
    ),
    replace: bool = typer.Option(
        False, "--replace", help="Overwrite user definitions of the same name."
    ),
) -> None:
    """Add definitions from a TOML file to definitions.toml (validated first)."""
    from tokenctl.render.definitions import render_definitions_added
    from tokenctl.services.definitions import add_definitions

    app_ctx = app_context(ctx)
    render_definitions_added(app_ctx.io, add_definitions(app_ctx, file, replace=replace))


def remove_command(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Definition name."),
    force: bool = typer.Option(False, "--force", help="Remove even while tokens use it."),
) -> None:
    """Remove a user definition (refused while tokens use it, unless --force)."""
    from tokenctl.render.definitions import render_definition_removed
    from tokenctl.services.definitions import remove_definition

    app_ctx = app_context(ctx)
    render_definition_removed(app_ctx.io, remove_definition(app_ctx, name, force=force))


def build() -> typer.Typer:
    """The ``definitions`` sub-application."""
    group = typer.Typer(invoke_without_command=True, no_args_is_help=False, rich_markup_mode=None)
    group.callback()(list_command)
    group.command("list")(list_subcommand)
    group.command("show")(show_command)
    group.command("add")(add_command)
    group.command("remove")(remove_command)
    return group
