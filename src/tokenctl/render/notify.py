"""Rendering of ``notify``: never a full webhook URL, never a signing secret."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tokenctl.iostreams import IOStreams
from tokenctl.render import plain_row, write_json

if TYPE_CHECKING:
    from tokenctl.services.notify import AddResult, TestOutcome, WebhookView


def render_added(io: IOStreams, result: AddResult) -> None:
    """One status line: added (or there already), signed or not."""
    signed = "signed" if result.signed else "unsigned"
    verb = "Added" if result.added else "Kept (it was there already)"
    io.status(f"{verb} webhook {result.shown} ({signed}).")


def render_webhooks(io: IOStreams, hooks: list[WebhookView], *, as_json: bool) -> None:
    """Number, shortened URL and signed/unsigned per webhook (``webhooks`` in json.md)."""
    if as_json:
        write_json(
            io,
            "webhooks",
            [
                {"number": h.number, "url": h.shown, "receiver": h.receiver, "signed": h.signed}
                for h in hooks
            ],
        )
        return
    for h in hooks:
        io.write(plain_row([str(h.number), h.shown, "signed" if h.signed else "unsigned"]))
    if not hooks:
        io.status("No webhooks; add one with `tokenctl notify add URL`.")


def render_removed(io: IOStreams, removed: WebhookView) -> None:
    """One status line."""
    secret = " and its signing secret" if removed.signed else ""
    io.status(f"Removed webhook {removed.shown}{secret}.")


def render_tests(io: IOStreams, outcomes: list[TestOutcome]) -> None:
    """One line per webhook on stderr: delivered, or why not."""
    for outcome in outcomes:
        if outcome.problem is None:
            io.status(f"webhook {outcome.shown}: test notice delivered.")
        else:
            io.warn(f"webhook {outcome.shown}: test notice not delivered ({outcome.problem})")
