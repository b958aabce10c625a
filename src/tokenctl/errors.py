"""Typed errors and the one table that maps them to exit codes.

Every failure a user can meet is one of these classes. The message says what went
wrong; the hint says what to do about it. Neither may ever contain a secret.
"""

from __future__ import annotations

from enum import IntEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import TextIO

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
    INTERRUPTED = 130  # Ctrl-C, as a shell reports a process killed by SIGINT


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


class DataKeyMissingError(SecretStoreError):
    """The inventory holds sealed secrets but the OS keyring no longer has their data key."""


class NewerDataKeyError(SecretStoreError):
    """The data key's keyring entry was written by a newer tokenctl: never replaced."""


class SecretUnreadableError(SecretStoreError):
    """One token's (or client's) sealed secret does not open with the inventory's data key."""


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


def debug_requested(environ: Mapping[str, str]) -> bool:
    """True when ``TOKENCTL_DEBUG`` asks for tracebacks (as ``--debug`` does)."""
    return environ.get("TOKENCTL_DEBUG", "").strip().lower() not in ("", "0", "false", "no")


def report_failure(error: BaseException, stderr: TextIO, *, debug: bool) -> int:
    """Report a command's failure on ``stderr``; the exit code it ends with.

    The one place both the Typer group and the quick ``token`` path map errors: a typed
    error shows its message and hint; Ctrl-C is 130; a reader of stdout that went away
    ends quietly with ``STDOUT_CLOSED``; anything else is an internal error. ``debug``
    adds the traceback (never for Ctrl-C).
    """
    if isinstance(error, KeyboardInterrupt):
        stderr.write("\ninterrupted\n")
        return int(ExitCode.INTERRUPTED)
    if debug:
        import traceback

        traceback.print_exception(error, file=stderr)
    if isinstance(error, TokenctlError):
        stderr.write(error_text(error))
        return int(error.exit_code)
    if isinstance(error, BrokenPipeError):
        # The reader of stdout went away (`tokenctl list | head -1`): no error, just stop.
        from tokenctl.iostreams import STDOUT_CLOSED, discard_stdout

        discard_stdout()
        return STDOUT_CLOSED
    # Without --debug, only the exception type: its text might echo input data.
    stderr.write(
        f"error: internal error ({type(error).__name__})\n"
        "hint: run again with --debug to see the traceback, and report it\n"
    )
    return int(ExitCode.ERROR)
