"""The kinds of definition, apart from the definitions' model so the quick path can use them."""

from __future__ import annotations

from enum import StrEnum


class DefinitionKind(StrEnum):
    """How a token of this definition is obtained."""

    STATIC = "static"
    OAUTH2 = "oauth2"
