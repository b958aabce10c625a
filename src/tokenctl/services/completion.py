"""Candidates for shell completion: token names and numbers, definition names.

A completion runs on every Tab, so it must be quick and touch nothing: it reads the
inventory's name columns without creating, migrating or locking it (never the keyring),
and the definitions from the digest the quick ``token`` path keeps
(:func:`tokenctl.services.quick_token.definition_policies`).
"""

from __future__ import annotations

from tokenctl.inventory.lookup import token_names
from tokenctl.paths import Paths

#: A candidate: the word to insert and a short description shells may show beside it.
Candidate = tuple[str, str]


def token_candidates(paths: Paths, incomplete: str) -> list[Candidate]:
    """Token names starting with ``incomplete``; token numbers when it is all digits.

    Empty when there is no inventory (yet) or it cannot be read as it stands.
    """
    rows = token_names(paths.inventory_file)
    if incomplete.isdigit():
        return [
            (str(number), name) for number, name, _ in rows if str(number).startswith(incomplete)
        ]
    return [
        (name, f"#{number} {definition}")
        for number, name, definition in rows
        if name.startswith(incomplete)
    ]


def definition_candidates(paths: Paths, incomplete: str) -> list[Candidate]:
    """Names of the definitions in effect (built-in and user) starting with ``incomplete``."""
    from tokenctl.services.quick_token import definition_policies

    policies = definition_policies(paths)
    return [
        (name, kind)
        for name, (kind, _margin) in sorted(policies.items())
        if name.startswith(incomplete)
    ]
