"""The Typer application: global options, command registration and the error boundary."""

from __future__ import annotations

import importlib
import sys
import traceback
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

import typer
import typer.main
from typer import _click
from typer._click.shell_completion import CompletionItem
from typer._coercion import RuntimeParam, build_runtime_param
from typer._param_types import (
    choice_coercion_annotation,
    coerce_cli_choice,
    coerce_cli_path,
    routes_to_path,
)
from typer.core import TyperArgument, TyperGroup, _TyperParameter

from tokenctl import __version__
from tokenctl.context import AppContext
from tokenctl.errors import ExitCode, TokenctlError, error_text
from tokenctl.iostreams import STDOUT_CLOSED as STDOUT_CLOSED
from tokenctl.iostreams import discard_stdout as discard_stdout

INTERRUPTED = 130

# -- parameter coercion without pydantic ------------------------------------------------
#
# Typer 0.29 coerces parameter values through pydantic TypeAdapters, built on first use:
# every value that is not already a bool, even a missing one (None) and even the value
# of -h/--help. Importing pydantic and building the adapters costs ~85 ms on every run,
# more than the whole overview. tokenctl's parameters are strings, paths, enums, bools
# and lists of those, so `_FastCoercion` coerces them with the Typer helpers that
# Typer's adapters call themselves, without pydantic. Whatever that path does not take
# (any exception, a value of another type) goes to Typer's own coercion, so results and
# error messages stay Typer's; only then is pydantic imported. This relies on Typer
# internals (`typer._coercion`, `typer._param_types`, `_TyperParameter._runtime_param`):
# pyproject.toml pins typer to 0.29.x, and tests/test_process.py checks both that `list`
# imports no pydantic and that the coercion agrees with Typer's.

_Leaf = Callable[[Any, _TyperParameter, _click.Context], Any]


class _UseTyperError(Exception):
    """Raised by a fast coercion for a value that Typer's own coercion must handle."""


def _exact_str(value: Any, param: _TyperParameter, ctx: _click.Context) -> Any:
    if type(value) is not str:
        raise _UseTyperError
    return value  # pydantic's str validation returns a str as it is


def _exact_bool(value: Any, param: _TyperParameter, ctx: _click.Context) -> Any:
    if type(value) is not bool:
        raise _UseTyperError
    return value


def _leaf_coercion(annotation: Any, param: _TyperParameter) -> _Leaf | None:
    """The coercion of one value of ``annotation``; ``None`` when Typer must do it."""
    info = param.type_descriptor.parameter_info
    if info.parser is not None:
        return None
    if annotation is str:
        return _exact_str
    if annotation is bool:
        return _exact_bool
    if annotation in (int, float) and not info.clamp:
        # Defaults such as --timeout's 300.0 are coerced on every run of their command,
        # and on every completion of it; a value typed on the command line is a str and
        # goes to Typer.
        number_type, low, high = annotation, info.min, info.max

        def exact_number(value: Any, param: _TyperParameter, ctx: _click.Context) -> Any:
            if type(value) is not number_type:
                raise _UseTyperError
            if (low is not None and value < low) or (high is not None and value > high):
                raise _UseTyperError  # Typer's coercion words the range error
            return value

        return exact_number
    choice = choice_coercion_annotation(annotation, info)
    if choice is not None:  # an Enum or a Literal
        choices, case_sensitive = choice

        def coerce_choice(value: Any, param: _TyperParameter, ctx: _click.Context) -> Any:
            return coerce_cli_choice(value, choices=choices, case_sensitive=case_sensitive, ctx=ctx)

        return coerce_choice
    if routes_to_path(annotation, info) and (info.path_type or annotation) is Path:

        def coerce_path(value: Any, param: _TyperParameter, ctx: _click.Context) -> Any:
            # Typer makes the Path with pydantic, which amounts to Path(value) for a str.
            if type(value) is not str:
                raise _UseTyperError
            return coerce_cli_path(Path(value), info, path_type=Path, param=param, ctx=ctx)

        return coerce_path
    return None


@dataclass(frozen=True)
class _FastCoercion(RuntimeParam):
    """Typer's coercion of one parameter, for the annotations tokenctl uses, sans pydantic.

    `RuntimeParam.coerce` (Typer's) still handles missing values and the multi-value
    checks; this class replaces only the per-value part.
    """

    leaf: _Leaf
    is_list: bool

    def _coerce_value(self, value: Any, param: _TyperParameter, ctx: _click.Context) -> Any:
        try:
            if not self.is_list:
                return self.leaf(value, param, ctx)
            items = value if isinstance(value, list | tuple) else [value]
            return [self.leaf(item, param, ctx) for item in items]
        except Exception:  # Typer's own coercion decides, and words the error
            typer_own = build_runtime_param(param.type_descriptor)
            return typer_own._coerce_value(value, param=param, ctx=ctx)


def _fast_coercion(param: _TyperParameter) -> _FastCoercion | None:
    descriptor = param.type_descriptor
    if descriptor.is_file or descriptor.is_tuple:
        return None
    annotation = descriptor.annotation
    if descriptor.is_list:
        (annotation,) = get_args(annotation)
    leaf = _leaf_coercion(annotation, param)
    if leaf is None:
        return None
    return _FastCoercion(
        parameter_info=descriptor.parameter_info,
        annotation=descriptor.annotation,
        leaf=leaf,
        is_list=descriptor.is_list,
    )


def use_fast_coercion(
    command: _click.Command, parent: _click.Context | None = None, *, subcommands: bool = True
) -> None:
    """Give the parameters of ``command`` (and its subcommands) `_FastCoercion` where it fits.

    That includes each command's -h/--help option, which Click creates on first use: it is
    created here, from a context made the way `Command.make_context` makes it, and cached
    by the command for the real run. Other types (numbers, dates, files, custom parsers)
    keep Typer's pydantic coercion.
    """
    ctx = _click.Context(command, parent=parent, **command.context_settings)
    params = list(command.params)
    help_option = command.get_help_option(ctx)
    if help_option is not None:
        params.append(help_option)
    for param in params:
        if isinstance(param, _TyperParameter) and param._runtime_param is None:
            param._runtime_param = _fast_coercion(param)
    if subcommands:
        for sub in getattr(command, "commands", {}).values():
            use_fast_coercion(sub, ctx)


# -- arguments named as the documentation names them ---------------------------------
#
# Typer 0.29 shows an argument with its Python type (`NAME <str>`) and a required one in
# braces (`{NAME}`), whatever its metavar; options show their metavar alone. Every
# argument of tokenctl has a metavar (NAME, REF, ...; tests/test_help.py checks), and is
# shown by it alone, as docs/commands.md writes it: `NAME`, `[REF]`, `[REF]...`.


class _NamedArgument(TyperArgument):
    """A Typer argument shown by its metavar, without a type and without braces."""

    def display_type_rich(self, ctx: _click.Context) -> str | None:
        """No type after the name: the metavar says what the value is."""
        return None if self.metavar else super().display_type_rich(ctx)

    def _rich_display_name(self) -> str:
        name = self.display_name_raw
        return name if self.nargs == 1 else f"{name}..."

    def _usage_display_name(self) -> str:
        if not self.metavar:
            return super()._usage_display_name()
        name = self.metavar if self.required else f"[{self.metavar}]"
        return name if self.nargs == 1 else f"{name}..."


def use_documented_names(command: _click.Command) -> None:
    """Show the arguments of ``command`` and its subcommands by their metavar alone.

    Typer makes every argument a `TyperArgument` and offers no way to choose the class,
    so each is turned into the subclass that only changes how it is displayed.
    """
    for param in command.params:
        if type(param) is TyperArgument:
            param.__class__ = _NamedArgument
    for sub in getattr(command, "commands", {}).values():
        use_documented_names(sub)


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


def report_error(app_ctx: AppContext | None, error: TokenctlError) -> None:
    """Write an error and its hint to stderr."""
    stream = app_ctx.io.stderr if app_ctx else sys.stderr
    stream.write(error_text(error))


class TokenctlGroup(TyperGroup):
    """The root group; maps every error to its exit code in this one place."""

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
        except BrokenPipeError:
            # The reader of stdout went away (`tokenctl list | head -1`): no error, just stop.
            app_ctx = ctx.obj if isinstance(ctx.obj, AppContext) else None
            if app_ctx is not None and app_ctx.debug:
                traceback.print_exc(file=app_ctx.io.stderr)
            discard_stdout()
            raise typer.Exit(STDOUT_CLOSED) from None
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
    """Assemble the application (cheap: subcommands are imported and built when used)."""
    app = _typer_app(TokenctlGroup, completion=True)
    app.callback()(root)
    return app
