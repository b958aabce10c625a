"""The commands tokenctl tells the user to run to get a token working again.

Hints, ``check``'s fixes, ``renew --all``'s report and ``delete``'s way back are all
built here, so they name the same flags and quote the same way. Cheap to import.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from typing import TYPE_CHECKING

from tokenctl.definitions import DefinitionKind

if TYPE_CHECKING:
    from tokenctl.definitions.model import Definition
    from tokenctl.models import Token

SECRET_FLAG = "--secret-stdin"  # noqa: S105 - a flag name, not a secret
LOGIN_FLAG = "--login"


def _tokenctl(words: Sequence[str]) -> str:
    return shlex.join(["tokenctl", *words])


def fix_command(name: str, kind: DefinitionKind | None, *, login: bool = True) -> str:
    """The exact command that renews the token ``name`` of a definition of ``kind``.

    A static token gets a new pass code from stdin; any other (OAuth, or a definition
    that is gone) a refresh, or with ``login`` an interactive login.
    """
    if kind is DefinitionKind.STATIC:
        return _tokenctl(["renew", name, SECRET_FLAG])
    return _tokenctl(["renew", name, *([LOGIN_FLAG] if login else [])])


def add_again_command(token: Token, definition: Definition | None) -> str:
    """The exact command that retrieves a new token for the same connection once deleted."""
    words = ["add", token.name, "--definition", token.definition]
    if token.description:
        words += ["--description", token.description]
    if token.identifier:
        words += ["--identifier", token.identifier]
    for placeholder in definition.placeholders if definition else ():
        if token.attributes.get(placeholder):
            words += ["--param", f"{placeholder}={token.attributes[placeholder]}"]
    if definition is not None and definition.oauth2 and token.attributes.get("tenant_id"):
        words += ["--tenant", token.attributes["tenant_id"]]
    kind = definition.kind if definition else DefinitionKind.STATIC
    if kind is DefinitionKind.STATIC and (
        token.secret_set_at or not definition or definition.pass_code_mandatory
    ):
        words.append(SECRET_FLAG)
    return _tokenctl(words)
