"""Renderers: turn service results into rich tables (TTY), plain text (pipes) or JSON."""

from __future__ import annotations

import json
from typing import Any

from tokenctl.iostreams import IOStreams
from tokenctl.textsafe import safe_json, safe_row

#: Version of every ``--json`` document; bumped only for incompatible changes.
SCHEMA_VERSION = 1

#: `write_data` hands stdout at most this much at a time (the capacity of a Linux pipe).
WRITE_CHUNK = 64 * 1024


def write_data(io: IOStreams, text: str) -> None:
    """Write a large text to stdout in pieces of at most `WRITE_CHUNK` characters.

    One write call for all of it is fastest, but when stdout is unbuffered (e.g.
    PYTHONUNBUFFERED=1) and its reader goes away midway, the write ends short with no
    error, the rest is dropped and tokenctl exits 0. Piece by piece, the next piece
    fails with BrokenPipeError (exit 141, see docs/exit-codes.md); and when stdout is
    unbuffered, a few large writes are much cheaper than one per line.
    """
    for start in range(0, len(text), WRITE_CHUNK):
        io.write(text[start : start + WRITE_CHUNK])


def write_json(io: IOStreams, kind: str, payload: Any) -> None:
    """Write one ``--json`` document: ``{"schema_version": 1, kind: payload}``.

    Indented on a terminal, for people; compact on one line otherwise, for programs.
    (Indentation is no part of the contract, see docs/json.md, and only the compact form
    uses the json module's C encoder: ~10x faster for a large inventory.) DEL and the C1
    controls are escaped too (textsafe.safe_json), so no value can drive the terminal.
    """
    document = {"schema_version": SCHEMA_VERSION, kind: payload}
    if io.stdout_tty:
        text = json.dumps(document, indent=2, ensure_ascii=False)
    else:
        text = json.dumps(document, ensure_ascii=False, separators=(",", ":"))
    write_data(io, safe_json(text) + "\n")


def plain_row(values: list[str | None]) -> str:
    r"""A tab-separated line for pipes; control characters inside values are escaped.

    TAB as ``\t``, a line break as ``\n``, ESC as ``\x1b`` (see tokenctl.textsafe).
    """
    return safe_row(values) + "\n"
