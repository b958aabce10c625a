"""``tokenctl token`` and ``tokenctl exec``: a valid access token for scripts."""

from __future__ import annotations

import typer

from tokenctl.cli.common import app_context, ref_argument

REF = ref_argument()


def token_command(ctx: typer.Context, ref: str = REF) -> None:
    """Print a valid access token and nothing else, refreshing it first when needed."""
    from tokenctl.services.access import current_access_token

    app_ctx = app_context(ctx)
    app_ctx.io.write(current_access_token(app_ctx, ref) + "\n")


def exec_command(
    ctx: typer.Context,
    ref: str = REF,
    command: list[str] = typer.Argument(None, help="The command, after --.", metavar="COMMAND"),
    env: str = typer.Option(
        "TOKENCTL_ACCESS_TOKEN",
        "--env",
        help="Environment variable that carries the token.",
        metavar="NAME",
    ),
) -> None:
    """Run COMMAND with a valid access token in an environment variable (never in argv)."""
    from tokenctl.services.access import run_with_token

    app_ctx = app_context(ctx)
    code = run_with_token(app_ctx, ref, command or [], env)
    raise typer.Exit(code if code >= 0 else 128 - code)
