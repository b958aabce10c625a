"""Typed errors and the one table that maps them to exit codes.

Every failure a user can meet is one of these classes. The message says what went
wrong; the hint says what to do about it. Neither may ever contain a secret.
"""

from __future__ import annotations

from enum import IntEnum

from tokenctl.textsafe import safe_line


class ExitCode(IntEnum):
    """Process exit codes; documented in docs/exit-codes.md."""

    OK = 0
    ERROR = 1
    USAGE = 2
    NOT_FOUND = 3
    SECRET_STORE = 4
    AUTHORIZATION = 5
    CHECK_EXPIRING = 10
    CHECK_FAILING = 11


class TokenctlError(Exception):
    """Base class: a failure with a user-facing message and an optional hint."""

    exit_code: ExitCode = ExitCode.ERROR

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class UsageError(TokenctlError):
    """The command line asks for something that cannot be done as asked."""

    exit_code = ExitCode.USAGE


class NotFoundError(TokenctlError):
    """A token, definition or file that was named does not exist."""

    exit_code = ExitCode.NOT_FOUND


class SecretStoreError(TokenctlError):
    """The OS keyring is missing, locked, insecure or failed."""

    exit_code = ExitCode.SECRET_STORE


class AuthorizationError(TokenctlError):
    """An authorization (login, refresh) is needed or failed."""

    exit_code = ExitCode.AUTHORIZATION


class ConflictError(TokenctlError):
    """The change would break a uniqueness rule or a dependency."""


class ConfigError(TokenctlError):
    """A hand-edited file (config.toml, definitions.toml) is malformed."""


class InventoryError(TokenctlError):
    """The token inventory cannot be opened, migrated or written."""


def error_text(error: TokenctlError) -> str:
    """How an error is shown on stderr: the message, then the hint.

    Each is one line with its control characters escaped: a message can quote a
    provider's error text or a file's content (see tokenctl.textsafe).
    """
    message = f"error: {safe_line(error.message)}\n"
    return message + (f"hint: {safe_line(error.hint)}\n" if error.hint else "")
