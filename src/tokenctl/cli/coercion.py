"""The one module that touches Typer internals: coercion without pydantic, argument names.

See the comment below for why; tests/test_process.py checks that the coercion agrees
with Typer's own, and pyproject.toml pins typer to the version it was written against.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

from typer import _click
from typer._coercion import RuntimeParam, build_runtime_param
from typer._param_types import (
    choice_coercion_annotation,
    coerce_cli_choice,
    coerce_cli_path,
    routes_to_path,
)
from typer.core import TyperArgument, _TyperParameter

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


#: A number as typed on the command line that pydantic and ``int()``/``float()`` read alike.
_PLAIN_INT = re.compile(r"[0-9]{1,18}")
_PLAIN_FLOAT = re.compile(r"[0-9]{1,15}(?:\.[0-9]{1,15})?")


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
        # and on every completion of it; a value typed on the command line is a str
        # (`renew --all --concurrency 8`): plain ASCII digits are read here, anything
        # else (signs, spaces, exponents, underscores, out of range) goes to Typer.
        number_type, low, high = annotation, info.min, info.max
        plain = _PLAIN_INT if number_type is int else _PLAIN_FLOAT

        def exact_number(value: Any, param: _TyperParameter, ctx: _click.Context) -> Any:
            if type(value) is str and plain.fullmatch(value):
                value = number_type(value)
            elif type(value) is not number_type:
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
