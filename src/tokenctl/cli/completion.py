"""Shell completion of REF arguments and definition names (see docs/completion.md).

A completion runs on every Tab, before any command: the root callback has not run, so
the paths come from ``--home`` as parsed so far and the environment. The candidates come
from :mod:`tokenctl.services.completion`, which reads only the inventory and the
definitions digest: no keyring, no network.
"""

from __future__ import annotations

from typing import Any

import typer

from tokenctl.context import AppContext
from tokenctl.paths import Paths


def _paths(ctx: typer.Context) -> Paths:
    root = ctx.find_root()
    base = root.obj if isinstance(root.obj, AppContext) else AppContext.from_environment()
    return base.with_options(home=root.params.get("home"), debug=False).paths


def complete_token_ref(ctx: typer.Context, incomplete: str) -> list[tuple[str, str]]:
    """Token names (or, once a digit is typed, numbers) that start with ``incomplete``."""
    from tokenctl.services.completion import token_candidates

    return _quietly(lambda: token_candidates(_paths(ctx), incomplete))


def complete_definition_name(ctx: typer.Context, incomplete: str) -> list[tuple[str, str]]:
    """Names of the definitions in effect that start with ``incomplete``."""
    from tokenctl.services.completion import definition_candidates

    return _quietly(lambda: definition_candidates(_paths(ctx), incomplete))


def _quietly(candidates: Any) -> list[tuple[str, str]]:
    # Whatever goes wrong (an unreadable home, a damaged file), a Tab offers nothing:
    # a message or a traceback would land in the middle of the user's command line,
    # and the command itself reports the problem once it runs.
    try:
        result: list[tuple[str, str]] = candidates()
    except Exception:
        return []
    return result
