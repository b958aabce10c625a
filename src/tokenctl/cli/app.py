"""The Typer application: global options, command registration and the error boundary."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator, Mapping, MutableMapping
from pathlib import Path
from typing import Any

import typer
import typer.main
from typer import _click
from typer._click.shell_completion import CompletionItem
from typer.core import TyperGroup

from tokenctl import __version__
from tokenctl.cli.coercion import use_documented_names, use_fast_coercion
from tokenctl.context import AppContext
from tokenctl.errors import debug_requested, report_failure

# -- subcommands, built on first use ----------------------------------------------------

#: The subcommands in the order `tokenctl --help` lists them: name -> (module, callback).
COMMANDS: dict[str, tuple[str, str]] = {
    "list": ("tokenctl.cli.list_cmd", "command"),
    "show": ("tokenctl.cli.show", "command"),
    "add": ("tokenctl.cli.add", "command"),
    "renew": ("tokenctl.cli.renew", "command"),
    "delete": ("tokenctl.cli.delete", "command"),
    "enable": ("tokenctl.cli.state", "enable"),
    "disable": ("tokenctl.cli.state", "disable"),
    "check": ("tokenctl.cli.check", "command"),
    "token": ("tokenctl.cli.token", "token_command"),
    "exec": ("tokenctl.cli.token", "exec_command"),
    "doctor": ("tokenctl.cli.doctor", "command"),
}
#: Sub-applications, listed after the commands: name -> (module, function returning a Typer).
GROUPS: dict[str, tuple[str, str]] = {
    "definitions": ("tokenctl.cli.definitions", "build"),
    "key": ("tokenctl.cli.key", "build"),
    "store": ("tokenctl.cli.store", "build"),
    "notify": ("tokenctl.cli.notify", "build"),
}


def _typer_app(cls: type[TyperGroup] | None = None, *, completion: bool = False) -> typer.Typer:
    return typer.Typer(
        name="tokenctl",
        cls=cls,
        no_args_is_help=True,
        # Typer's --install-completion and --show-completion: on the root only.
        add_completion=completion,
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},
        rich_markup_mode=None,
    )


def _scratch_callback() -> None:
    """Only there to make Typer build a group."""


def build_subcommand(name: str) -> _click.Command:
    """Import one subcommand and let Typer build it, as it builds a registered one."""
    is_group = name in GROUPS
    module, attribute = GROUPS[name] if is_group else COMMANDS[name]
    target = getattr(importlib.import_module(module), attribute)
    scratch = _typer_app()
    scratch.callback()(_scratch_callback)
    if is_group:
        scratch.add_typer(target(), name=name)
    else:
        scratch.command(name)(target)
    group = typer.main.get_command(scratch)
    assert isinstance(group, TyperGroup)
    return group.commands[name]


class _LazyCommands(MutableMapping[str, _click.Command]):
    """The root group's subcommands: named up front, imported and built on first use.

    Building all of them (Typer inspects every callback's signature and makes its
    parameters) and importing their modules cost each run ~10 ms, while a run uses one.
    `tokenctl --help` and a mistyped command name still see every command.
    """

    def __init__(self, group: TokenctlGroup, built: Mapping[str, _click.Command]) -> None:
        self._group = group
        self._entries: dict[str, _click.Command | None] = dict.fromkeys([*COMMANDS, *GROUPS])
        self._entries.update(built)

    def __getitem__(self, name: str) -> _click.Command:
        command = self._entries[name]
        if command is None:
            command = build_subcommand(name)
            parent = _click.Context(self._group, **self._group.context_settings)
            use_fast_coercion(command, parent)
            use_documented_names(command)
            self._entries[name] = command
        return command

    def __setitem__(self, name: str, command: _click.Command) -> None:
        self._entries[name] = command

    def __delitem__(self, name: str) -> None:
        del self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)


class TokenctlGroup(TyperGroup):
    """The root group; every error becomes its exit code here (see `report_failure`)."""

    def __init__(self, **attrs: Any) -> None:
        """Build the group; its subcommands are built when used (see `_LazyCommands`)."""
        super().__init__(**attrs)
        use_fast_coercion(self, subcommands=False)
        self.commands = _LazyCommands(self, self.commands)

    def main(self, *args: Any, **kwargs: Any) -> Any:
        """Run the command line, or answer a shell completion request (``_TOKENCTL_COMPLETE``)."""
        # Typer adds --install-completion and --show-completion after creating the group.
        use_fast_coercion(self, subcommands=False)
        return super().main(*args, **kwargs)

    def list_commands(self, ctx: _click.Context) -> list[str]:
        """The subcommands' names in order, without building them."""
        return list(self.commands)

    def shell_complete(self, ctx: _click.Context, incomplete: str) -> list[CompletionItem]:
        """Complete a command name, or a global option, without building any command.

        Typer's group completion builds every command whose name matches, for its help
        text: with an empty word all of them, ~60 ms on every Tab. The names alone are
        known up front (see `_LazyCommands`).
        """
        names = [CompletionItem(name) for name in self.commands if name.startswith(incomplete)]
        return names + _click.Command.shell_complete(self, ctx, incomplete)

    def invoke(self, ctx: Any) -> Any:
        """Run the command; errors become a message on stderr and their exit code."""
        try:
            return super().invoke(ctx)
        except (KeyboardInterrupt, Exception) as error:
            if type(error).__module__.startswith("typer."):
                raise  # typer.Exit, usage errors and the like: Typer reports them (exit 2)
            app_ctx = ctx.obj if isinstance(ctx.obj, AppContext) else None
            stderr = app_ctx.io.stderr if app_ctx is not None else sys.stderr
            debug = app_ctx is not None and app_ctx.debug
            raise typer.Exit(report_failure(error, stderr, debug=debug)) from None


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
    app_ctx = base.with_options(home=home, debug=debug or debug_requested(base.environ))
    ctx.obj = app_ctx
    ctx.call_on_close(app_ctx.close)


def build_app() -> typer.Typer:
    """Assemble the application (cheap: subcommands are imported and built when used)."""
    app = _typer_app(TokenctlGroup, completion=True)
    app.callback()(root)
    return app
