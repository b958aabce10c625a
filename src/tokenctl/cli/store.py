"""``tokenctl store``: the store that holds the inventory (local, or a team's OpenBao)."""

from __future__ import annotations

import typer

from tokenctl.cli.common import JSON_OPTION, app_context
from tokenctl.errors import ExitCode


def status_command(ctx: typer.Context, as_json: bool = JSON_OPTION) -> None:
    """Which store holds the inventory; for the team store, what the server and identity say."""
    from tokenctl.render.store import render_store_status
    from tokenctl.services.store import store_status

    app_ctx = app_context(ctx)
    status = store_status(app_ctx)
    render_store_status(app_ctx.io, status, as_json=as_json)
    if status.problem is not None:
        raise typer.Exit(4)


def use_command(
    ctx: typer.Context,
    kind: str = typer.Argument(
        ..., help="local, or openbao (OpenBao or HashiCorp Vault).", metavar="KIND"
    ),
    address: str | None = typer.Option(
        None,
        "--address",
        help="The team store's URL (default: BAO_ADDR or VAULT_ADDR).",
        metavar="URL",
    ),
    mount: str | None = typer.Option(
        None,
        "--mount",
        help="Its KV version 2 secrets engine (default: tokenctl).",
        metavar="MOUNT",
    ),
    path: str | None = typer.Option(
        None,
        "--path",
        help="The team inventory's path in the mount (default: inventory).",
        metavar="PATH",
    ),
    auth: str | None = typer.Option(
        None,
        "--auth",
        help="How to log in: token (BAO_TOKEN), approle or jwt (default: as config.toml says, "
        "else token).",
        metavar="token|approle|jwt",
    ),
    role: str | None = typer.Option(
        None,
        "--role",
        help="approle: the role id; jwt: the role's name.",
        metavar="ROLE",
    ),
    auth_mount: str | None = typer.Option(
        None,
        "--auth-mount",
        help="Where the auth method is mounted (default: approle, or jwt).",
        metavar="MOUNT",
    ),
    jwt_audience: str | None = typer.Option(
        None,
        "--jwt-audience",
        help="jwt on GitHub Actions: the audience to ask for (default: GitHub's).",
        metavar="AUDIENCE",
    ),
    secret_id_stdin: bool = typer.Option(
        False,
        "--secret-id-stdin",
        help="approle: read the secret id to check the login with from stdin (later commands "
        "read TOKENCTL_APPROLE_SECRET_ID).",
    ),
) -> None:
    """Choose the store in config.toml, after checking the team store answers and may be read."""
    from tokenctl.render.store import render_store_choice
    from tokenctl.services.store import LoginChoice, parse_store_auth, parse_store_kind, use_store

    app_ctx = app_context(ctx)
    login = LoginChoice(
        auth=parse_store_auth(auth),
        role=role,
        auth_mount=auth_mount,
        jwt_audience=jwt_audience,
        secret_id_from_stdin=secret_id_stdin,
    )
    choice = use_store(
        app_ctx, parse_store_kind(kind), address=address, mount=mount, path=path, login=login
    )
    render_store_choice(app_ctx.io, choice)


def copy_command(
    ctx: typer.Context,
    source: str = typer.Option(
        ..., "--from", help="The store to copy from: local or openbao.", metavar="KIND"
    ),
    destination: str = typer.Option(
        ..., "--to", help="The store to copy into: openbao or local.", metavar="KIND"
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Show what would be copied (add, same, differs); write nothing."
    ),
    overwrite: bool = typer.Option(
        False,
        "--overwrite",
        help="Replace a token (or client secret) that differs in the destination with the "
        "source's.",
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Copy every token, with its number, code, history and secrets, into the other store."""
    from tokenctl.render.store import render_store_copy
    from tokenctl.services.store_copy import copy_store, parse_copy_kind

    app_ctx = app_context(ctx)
    report = copy_store(
        app_ctx,
        parse_copy_kind(source, "--from"),
        parse_copy_kind(destination, "--to"),
        dry_run=dry_run,
        overwrite=overwrite,
    )
    render_store_copy(app_ctx.io, report, as_json=as_json)
    if report.refused:  # a dry run that shows what a copy would refuse
        raise typer.Exit(int(ExitCode.ERROR))


def build() -> typer.Typer:
    """The ``store`` sub-application."""
    group = typer.Typer(
        no_args_is_help=True,
        rich_markup_mode=None,
        help="The store that holds the inventory: this machine's, or a team's OpenBao.",
    )
    group.command("status")(status_command)
    group.command("use")(use_command)
    group.command("copy")(copy_command)
    return group
