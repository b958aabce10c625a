"""Rendering of definitions: the grouped list, one definition, and changes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tokenctl.iostreams import IOStreams
from tokenctl.render import plain_row, write_json
from tokenctl.textsafe import safe_line, safe_text

if TYPE_CHECKING:
    from tokenctl.services.definitions import (
        AddDefinitionsResult,
        DefinitionEntry,
        RelayPageResult,
        RemoveDefinitionResult,
    )


def _entry_to_dict(entry: DefinitionEntry) -> dict[str, Any]:
    payload = entry.definition.to_dict()
    payload["token_count"] = entry.token_count
    payload["overrides_builtin"] = entry.overrides_builtin
    return payload


def _mandatory(entry: DefinitionEntry) -> str:
    definition = entry.definition
    fields = [
        label
        for label, needed in (
            (definition.identifier_label, definition.identifier_mandatory),
            (definition.pass_code_label, definition.pass_code_mandatory),
        )
        if needed
    ]
    return ", ".join(fields) or "—"


def render_definition_list(io: IOStreams, entries: list[DefinitionEntry], *, as_json: bool) -> None:
    """Definitions grouped by classification."""
    if as_json:
        write_json(io, "definitions", [_entry_to_dict(entry) for entry in entries])
        return
    if not io.stdout_tty:
        for entry in entries:
            d = entry.definition
            io.write(
                plain_row(
                    [
                        d.name,
                        d.title,
                        d.classification,
                        d.kind.value,
                        _mandatory(entry),
                        str(entry.token_count),
                        d.source,
                    ]
                )
            )
        return
    from rich.table import Table
    from rich.text import Text

    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("Name", "Title", "Kind", "Mandatory", "Tokens", "Source"):
        table.add_column(column, overflow="fold")
    current: str | None = None
    for entry in entries:
        d = entry.definition
        if d.classification != current:
            current = d.classification
            table.add_row(Text(safe_line(current), style="bold underline"))
        source = "definitions.toml" if d.source != "built-in" else "built-in"
        if entry.overrides_builtin:
            source += " (overrides built-in)"
        table.add_row(
            Text(f"  {safe_line(d.name)}"),
            Text(safe_line(d.title)),
            d.kind.value,
            Text(safe_line(_mandatory(entry))),
            str(entry.token_count),
            source,
        )
    io.out.print(table)


def _shown_answer(answer: dict[str, Any]) -> str:
    """One ``dead_refresh_answers`` entry as a line: the error code and its text."""
    text = answer.get("description")
    return f"{answer['error']} ({text!r})" if text else str(answer["error"])


def render_definition(io: IOStreams, entry: DefinitionEntry, *, as_json: bool) -> None:
    """Every field of one definition."""
    if as_json:
        write_json(io, "definition", _entry_to_dict(entry))
        return
    data = entry.definition.to_dict()
    lines: list[tuple[str, str]] = []
    for key in ("name", "title", "classification", "kind", "description", "source"):
        lines.append((key, str(data[key] or "—")))
    lines.append(("mandatory", _mandatory(entry)))
    lines.append(("tokens using it", str(entry.token_count)))
    if entry.overrides_builtin:
        lines.append(("overrides", "the built-in definition of the same name"))
    for key in ("registration_url", "documentation_url"):
        if data[key]:
            lines.append((key.replace("_", " "), data[key]))
    for name, meaning in data["placeholders"].items():
        lines.append((f"--param {name}=", meaning))
    for section in ("oauth2", "lifetimes", "limits"):
        values = data[section] or {}
        for key, value in values.items():
            if value not in (None, [], {}):
                shown = (
                    "; ".join(_shown_answer(item) for item in value)
                    if key == "dead_refresh_answers"
                    else " ".join(value)
                    if isinstance(value, list)
                    else (
                        ", ".join(f"{k}={v}" for k, v in value.items())
                        if isinstance(value, dict)
                        else str(value)
                    )
                )
                lines.append((f"{section}.{key}", shown))
    lines = [(safe_line(key), safe_line(value)) for key, value in lines]
    setup = safe_text(data["setup"]) if data["setup"] else data["setup"]
    if not io.stdout_tty:
        for key, value in lines:
            io.write(f"{key}:\t{value}\n")
        if setup:
            io.write("setup:\n" + "".join(f"\t{line}\n" for line in setup.strip().splitlines()))
        return
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for key, value in lines:
        table.add_row(Text(key), Text(value))
    io.out.print(table)
    if setup:
        io.out.print(Panel(Text(setup.strip()), title="Setup", title_align="left"))


def render_definitions_added(io: IOStreams, result: AddDefinitionsResult) -> None:
    """Say which definitions were added, replaced or now override a built-in."""
    for definition in result.added:
        note = ""
        if definition.name in result.replaced:
            note = " (replaced the previous one)"
        elif definition.name in result.overridden_builtins:
            note = " (overrides the built-in one)"
        io.status(f"Added definition {definition.name!r} to {result.file}{note}.")


def render_definition_removed(io: IOStreams, result: RemoveDefinitionResult) -> None:
    """Say what removing a definition did."""
    io.status(f"Removed definition {result.name!r} from {result.file}.")
    if result.reverted_to_builtin:
        io.status(f"The built-in definition {result.name!r} is in effect again.")
    if result.orphaned_tokens:
        io.warn(
            f"{len(result.orphaned_tokens)} token(s) now refer to a missing definition: "
            + ", ".join(result.orphaned_tokens)
        )


def render_relay_page(io: IOStreams, result: RelayPageResult) -> None:
    """The page on stdout; on stderr, where it forwards to (and the risk without a port)."""
    io.write(result.html)
    if result.fixed_port is not None:
        io.status(f"The page forwards only to http://127.0.0.1:{result.fixed_port}/callback.")
        return
    io.warn(
        "the page forwards to whichever 127.0.0.1 port a request's state names, so a crafted "
        "link can send a user's browser to any local web service (see docs/login.md)"
    )
    io.status(
        "Prefer a fixed port: give the definition one (tokenctl definitions configure NAME "
        "--redirect-port PORT) and run: tokenctl definitions relay-page NAME"
    )
