"""Dotted paths into a provider's JSON answer (``d.results.0.CurrentDivision``)."""

from __future__ import annotations

from typing import Any


def dig(document: Any, path: str) -> str | None:
    """The scalar at a dotted path of a JSON document, as text; ``None`` when absent.

    A list index is a number. A key that itself contains dots (Twinfield's flat
    ``twf.clusterUrl``) is matched as written: at each level the longest run of the
    path's parts that is a key wins, and shorter runs are tried when that leads to no
    scalar.
    """
    value = _walk(document, path.split("."))
    return None if value is _MISSING else str(value)


_MISSING = object()


def _walk(current: Any, parts: list[str]) -> Any:
    if not parts:
        scalar = isinstance(current, (str, int, float)) and not isinstance(current, bool)
        return current if scalar else _MISSING
    if isinstance(current, list):
        head = parts[0]
        if head.isdigit() and int(head) < len(current):
            return _walk(current[int(head)], parts[1:])
        return _MISSING
    if not isinstance(current, dict):
        return _MISSING
    for size in range(len(parts), 0, -1):
        key = ".".join(parts[:size])
        if key in current:
            found = _walk(current[key], parts[size:])
            if found is not _MISSING:
                return found
    return _MISSING
