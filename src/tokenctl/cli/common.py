"""Helpers shared by the command modules."""

from __future__ import annotations

import typer

from tokenctl.context import AppContext

JSON_OPTION = typer.Option(False, "--json", help="Write stable JSON (see docs/json.md) to stdout.")


def app_context(ctx: typer.Context) -> AppContext:
    """The :class:`AppContext` the root callback attached to this invocation."""
    obj = ctx.find_root().obj
    if not isinstance(obj, AppContext):  # pragma: no cover - the root callback always sets it
        raise RuntimeError("tokenctl context missing")
    return obj
