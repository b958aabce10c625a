"""``tokenctl notify``: the webhooks that ``check`` and ``renew --all`` send notices to."""

from __future__ import annotations

import typer

from tokenctl.cli.common import JSON_OPTION, app_context


def add_command(
    ctx: typer.Context,
    url: str = typer.Argument(..., metavar="URL", help="https:// (http:// only to loopback)."),
    secret_stdin: bool = typer.Option(
        False, "--secret-stdin", help="Read a signing secret from stdin (kept in the store)."
    ),
) -> None:
    """Add a webhook; with --secret-stdin its notices are signed (X-Tokenctl-Signature)."""
    from tokenctl.render.notify import render_added
    from tokenctl.services.notify import add_webhook

    app_ctx = app_context(ctx)
    render_added(app_ctx.io, add_webhook(app_ctx, url, secret_from_stdin=secret_stdin))


def list_command(ctx: typer.Context, as_json: bool = JSON_OPTION) -> None:
    """List the webhooks (their URLs shortened: they hold a credential)."""
    from tokenctl.render.notify import render_webhooks
    from tokenctl.services.notify import list_webhooks

    app_ctx = app_context(ctx)
    render_webhooks(app_ctx.io, list_webhooks(app_ctx), as_json=as_json)


def remove_command(
    ctx: typer.Context,
    ref: str = typer.Argument(..., metavar="URL", help="Its URL, or its number in `notify list`."),
) -> None:
    """Remove a webhook and its signing secret."""
    from tokenctl.render.notify import render_removed
    from tokenctl.services.notify import remove_webhook

    app_ctx = app_context(ctx)
    render_removed(app_ctx.io, remove_webhook(app_ctx, ref))


def test_command(
    ctx: typer.Context,
    ref: str | None = typer.Argument(
        None, metavar="[URL]", help="Only this webhook (its URL or number); default: all."
    ),
) -> None:
    """Send a test notice; exit 1 when a webhook did not take it."""
    from tokenctl.render.notify import render_tests
    from tokenctl.services.notify import test_webhooks

    app_ctx = app_context(ctx)
    outcomes = test_webhooks(app_ctx, ref)
    render_tests(app_ctx.io, outcomes)
    if any(outcome.problem is not None for outcome in outcomes):
        raise typer.Exit(1)


def build() -> typer.Typer:
    """The ``notify`` sub-application."""
    group = typer.Typer(
        no_args_is_help=True,
        rich_markup_mode=None,
        help="Webhooks (Slack, Teams, your own) told when a token starts to fail or expire.",
    )
    group.command("add")(add_command)
    group.command("list")(list_command)
    group.command("remove")(remove_command)
    group.command("test")(test_command)
    return group
