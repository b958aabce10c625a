"""The commands tokenctl tells the user to run to get a token working again.

Hints, ``check``'s fixes, ``renew --all``'s report and the ``add`` that ``delete`` prints are all
built here, so they name the same flags and quote the same way. Cheap to import.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from tokenctl.definitions import DefinitionKind
from tokenctl.services.oauth_options import DEFAULT_TIMEOUT
from tokenctl.textsafe import shell_join

if TYPE_CHECKING:
    from tokenctl.services.tokens import AddRequest

SECRET_FLAG = "--secret-stdin"  # noqa: S105 - a flag name, not a secret
LOGIN_FLAG = "--login"


def _tokenctl(words: Sequence[str]) -> str:
    return shell_join(["tokenctl", *words])


def fix_command(name: str, kind: DefinitionKind | None, *, login: bool = True) -> str:
    """The exact command that renews the token ``name`` of a definition of ``kind``.

    A static token gets a new pass code from stdin; any other (OAuth, or a definition
    that is gone) a refresh, or with ``login`` an interactive login.
    """
    if kind is DefinitionKind.STATIC:
        return _tokenctl(["renew", name, SECRET_FLAG])
    return _tokenctl(["renew", name, *([LOGIN_FLAG] if login else [])])


def enable_command(name: str) -> str:
    """The exact command that makes the token ``name`` effective again."""
    return _tokenctl(["enable", name])


#: The login modes that have a flag of their own (the definition's default has none).
_MODE_FLAGS = {"device": "--device", "paste": "--paste", "relay": "--relay"}


def add_command(request: AddRequest) -> str:
    """The ``tokenctl add`` command line that makes exactly ``request``."""
    words = ["tokenctl", "add", request.name, "--definition", request.definition]
    if request.description:
        words += ["--description", request.description]
    if request.identifier:
        words += ["--identifier", request.identifier]
    if request.authentication_code:
        words += ["--code", request.authentication_code]
    if request.expires_at is not None:
        from tokenctl.timeutil import to_iso

        words += ["--expires-at", str(to_iso(request.expires_at))]
    if request.expires_in is not None:
        from tokenctl.timeutil import format_duration

        words += ["--expires-in", format_duration(request.expires_in)]
    for key, value in request.params.items():
        words += ["--param", f"{key}={value}"]
    login = request.login
    if login is None:
        words.append("--no-login")
    else:
        if login.tenant:
            words += ["--tenant", login.tenant]
        if login.mode is not None:
            words.append(_MODE_FLAGS[login.mode])
        if not login.open_browser:
            words.append("--no-browser")
        if login.reuse_session:
            words.append("--reuse-session")
        if login.timeout != DEFAULT_TIMEOUT:
            words += ["--timeout", f"{login.timeout:g}"]
        if login.assume_yes:
            words.append("--yes")
    if request.secret_from_stdin:
        words.append(SECRET_FLAG)
    return shell_join(words)
