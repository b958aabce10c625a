"""``tokenctl definitions``: list, show, add and remove definitions."""

from __future__ import annotations

from pathlib import Path

import typer

from tokenctl.cli.common import JSON_OPTION, app_context
from tokenctl.cli.completion import complete_definition_name

DEFINITION_ARGUMENT = typer.Argument(
    ..., help="Definition name.", metavar="NAME", autocompletion=complete_definition_name
)


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
    name: str = DEFINITION_ARGUMENT,
    as_json: bool = JSON_OPTION,
) -> None:
    """Show every field of one definition."""
    from tokenctl.render.definitions import render_definition
    from tokenctl.services.definitions import show_definition

    app_ctx = app_context(ctx)
    render_definition(app_ctx.io, show_definition(app_ctx, name), as_json=as_json)


def add_command(
    ctx: typer.Context,
    name: str | None = typer.Argument(
        None, help="Name of the new definition (with --issuer).", metavar="NAME"
    ),
    file: Path | None = typer.Option(
        None,
        "--file",
        "-f",
        help="TOML file with [definitions.NAME] tables.",
        dir_okay=False,
        metavar="FILE",
    ),
    issuer: str | None = typer.Option(
        None,
        "--issuer",
        help="Fill the endpoints from the issuer's discovery document.",
        metavar="URL",
    ),
    title: str | None = typer.Option(
        None, "--title", help="With --issuer: the title.", metavar="TITLE"
    ),
    classification: str | None = typer.Option(
        None, "--classification", help="With --issuer: the classification.", metavar="TEXT"
    ),
    scope: list[str] = typer.Option(
        [], "--scope", help="With --issuer: a scope (repeatable).", metavar="SCOPE"
    ),
    client_id: str | None = typer.Option(
        None, "--client-id", help="With --issuer: client id.", metavar="ID"
    ),
    replace: bool = typer.Option(
        False, "--replace", help="Overwrite user definitions of the same name."
    ),
) -> None:
    """Add definitions from a TOML file, or one from OIDC discovery (NAME --issuer URL)."""
    from tokenctl.errors import UsageError
    from tokenctl.render.definitions import render_definitions_added
    from tokenctl.services.definitions import (
        DiscoverRequest,
        add_definitions,
        add_discovered_definition,
    )

    app_ctx = app_context(ctx)
    if (file is None) == (issuer is None):
        raise UsageError("give --file F, or NAME --issuer URL")
    if issuer is not None:
        if not name:
            raise UsageError("give the new definition's NAME before --issuer")
        request = DiscoverRequest(
            name=name,
            issuer=issuer,
            title=title,
            classification=classification,
            scopes=tuple(scope),
            client_id=client_id,
            replace=replace,
        )
        result = add_discovered_definition(app_ctx, request)
    else:
        assert file is not None
        result = add_definitions(app_ctx, file, replace=replace)
    render_definitions_added(app_ctx.io, result)


def configure_command(
    ctx: typer.Context,
    name: str = DEFINITION_ARGUMENT,
    client_id: str = typer.Option(
        ..., "--client-id", help="The registered client id.", metavar="ID"
    ),
    client_secret_stdin: bool = typer.Option(
        False, "--client-secret-stdin", help="Read the client secret from stdin (stored encrypted)."
    ),
    auth_method: str | None = typer.Option(
        None,
        "--auth-method",
        metavar="METHOD",
        help="none, client_secret_basic or client_secret_post (default: basic with a secret).",
    ),
    login_mode: str | None = typer.Option(
        None,
        "--login-mode",
        help="loopback, paste, device or relay (the default mode).",
        metavar="MODE",
    ),
    redirect_uri: str | None = typer.Option(
        None,
        "--redirect-uri",
        help="The registered HTTPS redirect URI (paste and relay).",
        metavar="URL",
    ),
    redirect_port: int | None = typer.Option(
        None,
        "--redirect-port",
        min=1,
        max=65535,
        metavar="PORT",
        help="A fixed loopback listener port.",
    ),
) -> None:
    """Set a definition's client id and login settings; its client secret goes to the keyring."""
    from tokenctl.services.definitions import configure_definition

    app_ctx = app_context(ctx)
    result = configure_definition(
        app_ctx,
        name,
        client_id=client_id,
        secret_from_stdin=client_secret_stdin,
        auth_method=auth_method,
        login_mode=login_mode,
        redirect_uri=redirect_uri,
        redirect_port=redirect_port,
    )
    secret = "; client secret stored, encrypted" if result.secret_stored else ""
    app_ctx.io.status(f"Definition {name!r} uses client id {result.client_id}{secret}.")


def remove_command(
    ctx: typer.Context,
    name: str = DEFINITION_ARGUMENT,
    force: bool = typer.Option(False, "--force", help="Remove even while tokens use it."),
) -> None:
    """Remove a user definition (refused while tokens use it, unless --force)."""
    from tokenctl.render.definitions import render_definition_removed
    from tokenctl.services.definitions import remove_definition

    app_ctx = app_context(ctx)
    render_definition_removed(app_ctx.io, remove_definition(app_ctx, name, force=force))


def relay_page_command(
    ctx: typer.Context,
    name: str | None = typer.Argument(
        None,
        help="Definition whose oauth2.redirect_port the page forwards to (the safe default).",
        metavar="NAME",
        autocompletion=complete_definition_name,
    ),
    port: int | None = typer.Option(
        None,
        "--port",
        min=1024,
        max=65535,
        metavar="PORT",
        help="A fixed listener port (the definition's redirect_port) instead of the state's.",
    ),
) -> None:
    """Print the static HTML page to host at a registered HTTPS redirect URI (relay mode)."""
    from tokenctl.render.definitions import render_relay_page
    from tokenctl.services.definitions import relay_page_for

    app_ctx = app_context(ctx)
    render_relay_page(app_ctx.io, relay_page_for(app_ctx, name, port))


def build() -> typer.Typer:
    """The ``definitions`` sub-application."""
    group = typer.Typer(invoke_without_command=True, no_args_is_help=False, rich_markup_mode=None)
    group.callback()(list_command)
    group.command("list")(list_subcommand)
    group.command("show")(show_command)
    group.command("add")(add_command)
    group.command("remove")(remove_command)
    group.command("configure")(configure_command)
    group.command("relay-page")(relay_page_command)
    return group
