"""Rendering of ``store status``, ``store use`` and ``store copy``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tokenctl.iostreams import IOStreams
from tokenctl.render import plain_row, write_json
from tokenctl.services.store import store_lines
from tokenctl.textsafe import safe_line

if TYPE_CHECKING:
    from tokenctl.services.store import StoreChoice, StoreStatus
    from tokenctl.services.store_copy import CopyReport as StoreCopyReport


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


def render_store_copy(io: IOStreams, report: StoreCopyReport, *, as_json: bool) -> None:
    """Each token and client secret with what the copy did; a summary on stderr."""
    if as_json:
        write_json(io, "store_copy", store_copy_document(report))
    elif io.stdout_tty and (report.tokens or report.clients):
        from rich.table import Table
        from rich.text import Text

        table = Table(box=None, header_style="bold", pad_edge=False)
        for column in ("#", "Name", "Action", "Detail"):
            table.add_column(column, overflow="fold")
        for token in report.tokens:
            table.add_row(
                str(token.number),
                Text(safe_line(token.name)),
                token.action.value,
                Text(safe_line(token.detail or "")),
            )
        for client in report.clients:
            table.add_row(
                "",
                Text(safe_line(f"client {client.definition}/{client.client_id}")),
                client.action.value,
                "",
            )
        io.out.print(table)
    else:
        for token in report.tokens:
            io.write(plain_row([str(token.number), token.name, token.action.value, token.detail]))
        for client in report.clients:
            name = f"client {client.definition}/{client.client_id}"
            io.write(plain_row(["", name, client.action.value, ""]))
    io.status(_copy_summary(report))


def _copy_summary(report: StoreCopyReport) -> str:
    """One line: what was (or would be) copied, and which store the profile still uses."""
    counts: dict[str, int] = {}
    for item in report.items:
        counts[item.action.value] = counts.get(item.action.value, 0) + 1
    tally = ", ".join(f"{n} {action}" for action, n in sorted(counts.items())) or "nothing"
    where = f"from {report.source_where} to {report.destination_where}"
    total = f"{len(report.tokens)} token(s), {len(report.clients)} client secret(s)"
    if not report.items:
        head = f"Nothing to copy: {report.source_where} holds no tokens."
    elif report.dry_run:
        head = f"Dry run, nothing written: {total} {where}: {tally}."
        if report.refused:
            head += (
                f" A copy would be refused ({len(report.refused)} conflict(s)): "
                "`--overwrite` replaces what differs; a clash needs one of the two renamed."
            )
    elif report.changes:
        head = f"Copied {where}: {total}: {tally}."
    else:
        head = f"Nothing to copy {where}: every one of the {total} is already there as it is."
    if report.in_use is not report.destination and not report.dry_run:
        head += (
            f" config.toml still chooses the {report.in_use.value} store: "
            f"`tokenctl store use {report.destination.value}` switches to the copy."
        )
    return safe_line(head)


def store_copy_document(report: StoreCopyReport) -> dict[str, object]:
    """The ``store_copy`` JSON payload (docs/json.md#store-copy)."""
    return {
        "from": report.source.value,
        "to": report.destination.value,
        "source": report.source_where,
        "destination": report.destination_where,
        "dry_run": report.dry_run,
        "overwrite": report.overwrite,
        "written": report.written,
        "changes": report.changes,
        "refused": len(report.refused),
        "store_in_use": report.in_use.value,
        "tokens": [
            {
                "number": token.number,
                "name": token.name,
                "action": token.action.value,
                "differences": list(token.differences),
                "detail": token.detail,
            }
            for token in report.tokens
        ],
        "client_secrets": [
            {
                "definition": client.definition,
                "client_id": client.client_id,
                "action": client.action.value,
            }
            for client in report.clients
        ],
    }
