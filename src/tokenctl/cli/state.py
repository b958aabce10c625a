"""``tokenctl enable`` / ``tokenctl disable``: the life-cycle state."""

from __future__ import annotations

import typer

from tokenctl.cli.common import app_context, ref_argument
from tokenctl.models import LifecycleState

REF = ref_argument()


def _set(ctx: typer.Context, ref: str, state: LifecycleState) -> None:
    from tokenctl.render.tokens import render_state_change
    from tokenctl.services.tokens import set_state

    app_ctx = app_context(ctx)
    render_state_change(app_ctx.io, set_state(app_ctx, ref, state))


def enable(ctx: typer.Context, ref: str = REF) -> None:
    """Make a token effective (used, renewed and checked)."""
    _set(ctx, ref, LifecycleState.EFFECTIVE)


def disable(ctx: typer.Context, ref: str = REF) -> None:
    """Make a token not effective (kept, but not used)."""
    _set(ctx, ref, LifecycleState.NOT_EFFECTIVE)
