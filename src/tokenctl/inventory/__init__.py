"""The token inventory: records and history, no secrets. See :class:`Inventory`."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # the quick `token` path imports this package but builds no records
    from tokenctl.models import Actor, HistoryEvent, Token, TokenChanges


class Inventory(Protocol):
    """Where token records and their history live.

    The SQLite implementation is the default; a shared store (a Vault-compatible
    engine) can implement the same protocol. Every method is atomic on its own.
    """

    def add(self, token: Token, actor: Actor, now: datetime) -> Token:
        """Insert a new record (its number is assigned here) and a ``created`` event."""
        ...

    def resolve(self, ref: str) -> Token:
        """Find a token by number, name or authentication code."""
        ...

    def get(self, number: int) -> Token:
        """The token with this number as it is now; ``NotFoundError`` once it is gone."""
        ...

    def tokens(self) -> list[Token]:
        """Every token, ordered by number."""
        ...

    def update(
        self,
        number: int,
        changes: TokenChanges,
        actor: Actor,
        now: datetime,
        *,
        event: str,
        outcome: str = "ok",
        detail: str | None = None,
    ) -> Token:
        """Apply ``changes`` and append one history event, in one transaction."""
        ...

    def update_if(
        self,
        number: int,
        decide: Callable[[Token], TokenChanges | None],
        actor: Actor,
        now: datetime,
        *,
        event: str,
        outcome: str = "ok",
        detail: str | None = None,
    ) -> tuple[Token, bool]:
        """Let ``decide`` pick changes from the current record, atomically; ``None`` = none."""
        ...

    def delete(self, number: int, actor: Actor, now: datetime, *, detail: str | None) -> None:
        """Remove the record; the history keeps a ``deleted`` event."""
        ...

    def record_event(
        self,
        token: Token,
        actor: Actor,
        now: datetime,
        *,
        event: str,
        outcome: str,
        detail: str | None = None,
    ) -> None:
        """Append a history event without changing the record."""
        ...

    def history(self, number: int, limit: int | None = None) -> list[HistoryEvent]:
        """Events of one token number, newest first."""
        ...

    def names_using_definition(self, definition: str) -> Sequence[str]:
        """Names of the tokens whose definition is ``definition``."""
        ...

    def check_integrity(self) -> list[str]:
        """Problems found in the store; empty when it is sound."""
        ...

    def describe(self) -> Mapping[str, Any]:
        """Facts for ``doctor``: location, schema version, counts."""
        ...

    def close(self) -> None:
        """Release the connection."""
        ...
