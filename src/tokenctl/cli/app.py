"""The Typer application: global options, command registration and the error boundary."""

from __future__ import annotations

import sys
import traceback
from pathlib import Path
from typing import Any

import typer
from typer.core import TyperGroup

from tokenctl import __version__
from tokenctl.cli import add, definitions, delete, doctor, list_cmd, renew, show, state
from tokenctl.context import AppContext
from tokenctl.errors import ExitCode, TokenctlError

INTERRUPTED = 130


def report_error(app_ctx: AppContext | None, error: TokenctlError) -> None:
    """Write an error and its hint to stderr."""
    stream = app_ctx.io.stderr if app_ctx else sys.stderr
    stream.write(f"error: {error.message}\n")
    if error.hint:
        stream.write(f"hint: {error.hint}\n")


class TokenctlGroup(TyperGroup):
    """The root group; maps every error to its exit code in this one place."""

    def invoke(self, ctx: Any) -> Any:
        """Run the command; typed errors become a message and their exit code."""
        try:
            return super().invoke(ctx)
        except TokenctlError as error:
            app_ctx = ctx.obj if isinstance(ctx.obj, AppContext) else None
            if app_ctx is not None and app_ctx.debug:
                traceback.print_exc(file=app_ctx.io.stderr)
            report_error(app_ctx, error)
            raise typer.Exit(int(error.exit_code)) from None
        except KeyboardInterrupt:
            sys.stderr.write("\ninterrupted\n")
            raise typer.Exit(INTERRUPTED) from None
        except (typer.Exit, typer.Abort):
            raise
        except Exception as error:
            if type(error).__module__.startswith("typer."):
                raise  # usage errors and the like: Typer reports them (exit 2)
            app_ctx = ctx.obj if isinstance(ctx.obj, AppContext) else None
            stream = app_ctx.io.stderr if app_ctx else sys.stderr
            if app_ctx is not None and app_ctx.debug:
                traceback.print_exc(file=stream)
            # Without --debug, only the exception type: its text might echo input data.
            stream.write(
                f"error: internal error ({type(error).__name__})\n"
                "hint: run again with --debug to see the traceback, and report it\n"
            )
            raise typer.Exit(int(ExitCode.ERROR)) from None


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"tokenctl {__version__}")
        raise typer.Exit()


def root(
    ctx: typer.Context,
    home: Path | None = typer.Option(
        None,
        "--home",
        help="Keep config and data under DIR (like TOKENCTL_HOME).",
        file_okay=False,
        metavar="DIR",
    ),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks of errors."),
    version: bool = typer.Option(
        False, "--version", callback=_show_version, is_eager=True, help="Show the version."
    ),
) -> None:
    """Administer the access tokens of web-service integrations with financial packages."""
    base = ctx.obj if isinstance(ctx.obj, AppContext) else AppContext.from_environment()
    env_debug = base.environ.get("TOKENCTL_DEBUG", "").strip().lower() not in (
        "",
        "0",
        "false",
        "no",
    )
    app_ctx = base.with_options(home=home, debug=debug or env_debug)
    ctx.obj = app_ctx
    ctx.call_on_close(app_ctx.close)


def build_app() -> typer.Typer:
    """Assemble the application (cheap: command modules import their services lazily)."""
    app = typer.Typer(
        name="tokenctl",
        cls=TokenctlGroup,
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},
        rich_markup_mode=None,
    )
    app.callback()(root)
    app.command("list")(list_cmd.command)
    app.command("show")(show.command)
    app.command("add")(add.command)
    app.command("renew")(renew.command)
    app.command("delete")(delete.command)
    app.command("enable")(state.enable)
    app.command("disable")(state.disable)
    app.add_typer(definitions.build(), name="definitions")
    app.command("doctor")(doctor.command)
    return app
