"""Rendering of ``store status`` and ``store use``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tokenctl.iostreams import IOStreams
from tokenctl.render import write_json
from tokenctl.services.store import store_lines
from tokenctl.textsafe import safe_line

if TYPE_CHECKING:
    from tokenctl.services.store import StoreChoice, StoreStatus


def render_store_status(io: IOStreams, status: StoreStatus, *, as_json: bool) -> None:
    """The store's facts; a problem is also said on stderr."""
    if as_json:
        write_json(io, "store", {**status.facts, "problem": status.problem})
        return
    for label, value in store_lines(status.facts):
        io.write(f"{label:13} {safe_line(value)}\n")
    if status.problem is not None:
        io.warn(status.problem)


def render_store_choice(io: IOStreams, choice: StoreChoice) -> None:
    """What was written where (stderr: a status line; stdout stays empty)."""
    facts = choice.facts
    if facts.get("kind") == "openbao":
        where = f"the team store {facts.get('address')} {facts.get('mount')}/{facts.get('path')}"
    else:
        where = f"the local store {facts.get('path')}"
    io.status(f"{choice.config_file}: the inventory is now in {where}")
