"""Definitions: how each kind of token is obtained.

:class:`DefinitionKind` lives here, not in :mod:`.model`, so that the quick ``token``
path can name a kind without loading the definitions' model.
"""

from __future__ import annotations

from enum import StrEnum


class DefinitionKind(StrEnum):
    """How a token of this definition is obtained."""

    STATIC = "static"
    OAUTH2 = "oauth2"
