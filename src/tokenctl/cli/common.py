"""Helpers shared by the command modules."""

from __future__ import annotations

from typing import Any

import typer

from tokenctl.cli.completion import complete_definition_name, complete_token_ref
from tokenctl.context import AppContext

JSON_OPTION = typer.Option(False, "--json", help="Write stable JSON (see docs/json.md) to stdout.")
REF_HELP = "Number, name or authentication code."


def ref_argument(default: Any = ..., *, help: str = REF_HELP) -> Any:
    """A REF argument (see docs/commands.md), completed from the inventory."""
    return typer.Argument(default, help=help, metavar="REF", autocompletion=complete_token_ref)


def definition_option(*names: str, help: str, required: bool = False) -> Any:
    """A ``--definition DEFINITION`` option, completed from the definitions in effect."""
    return typer.Option(
        ... if required else None,
        *names,
        help=help,
        metavar="DEFINITION",
        autocompletion=complete_definition_name,
    )


def app_context(ctx: typer.Context) -> AppContext:
    """The :class:`AppContext` the root callback attached to this invocation."""
    obj = ctx.find_root().obj
    if not isinstance(obj, AppContext):  # pragma: no cover - the root callback always sets it
        raise RuntimeError("tokenctl context missing")
    return obj
