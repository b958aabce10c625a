"""The token inventory: records, history and the sealed secrets. See :class:`Inventory`."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # the quick `token` path imports this package but builds no records
    from tokenctl.inventory.key_reports import RotationResult, SecretSummary
    from tokenctl.models import (
        Actor,
        HistoryEvent,
        NoticeMark,
        Token,
        TokenCall,
        TokenChanges,
        TokenSecrets,
    )


class RefreshLease(Protocol):
    """The right to refresh one token (or store a new login of it), one holder at a time.

    Exclusive among every tokenctl that uses the same store: on the local store the
    processes of this machine, on the team store every machine. Taken by polling
    :meth:`try_acquire` (every :attr:`poll_seconds`), so that async code waits on its
    event loop, never in a thread. A holder that dies blocks no one for long: the local
    store's lock goes with the process, the team store's lease expires after its ``ttl``.
    """

    #: How long to wait before trying again when :meth:`try_acquire` said no.
    poll_seconds: float
    #: Whether taking and giving it up asks a server (the team store): then async code
    #: calls them off its event loop. A local lock is a system call, made on the loop.
    remote: bool

    def try_acquire(self) -> bool:
        """Take the lease if no one else holds it now; never waits."""
        ...

    def release(self) -> None:
        """Give the lease up, if it is still ours; releasing one not held does nothing."""
        ...


class Inventory(Protocol):
    """Where token records, their history and their secrets live.

    The SQLite implementation is the default; a shared store (a Vault-compatible
    engine) can implement the same protocol. Every method is atomic on its own; a
    method that takes ``secrets`` stores them in the same transaction as the record.
    Only the secret methods (``secrets``, ``client_secret``, ``set_client_secret``,
    ``webhook_secret``, ``set_webhook_secret``, ``secret_summary``, ``rotate_key``,
    ``reset_key`` and writes given ``secrets``) may open the OS keyring.
    """

    #: Whether its calls ask a server (the team store): then async code makes them off
    #: its event loop. The local store's are local disk work, made on the loop.
    remote: bool

    @property
    def inventory_id(self) -> str:
        """The inventory's random id; its data key's keyring entry is named after it."""
        ...

    def add(
        self, token: Token, actor: Actor, now: datetime, *, secrets: TokenSecrets | None = None
    ) -> Token:
        """Insert a new record (numbered here), its secrets and a ``created`` event."""
        ...

    def group_commit(self) -> AbstractContextManager[None]:
        """Let the record changes made while it is open become durable together at its end.

        For many changes in a row (``renew --all``): the local store makes each
        ``update``/``update_if`` a savepoint of one transaction and commits (one sync to
        disk) when the context ends; every change stays atomic on its own, and any other
        change commits at once as always. A caller hands on a change's result only after
        the context ended without error (the executors of :mod:`tokenctl.inventory.worker`
        do that). The team store writes each change through at once: a no-op there.
        """
        ...

    def import_token(
        self,
        token: Token,
        secrets: TokenSecrets | None,
        history: Sequence[HistoryEvent],
        *,
        replace: bool = False,
    ) -> Token:
        """Insert ``token`` as another store holds it (``store copy``): nothing is renumbered.

        Its number, authentication code and log information are kept, ``secrets`` stored
        (``None``: none), ``history`` (newest first, as :meth:`history` gives it) written as
        its history with each event's time, user and unit; no event is added. The counter
        is raised past the number, so it is never handed out again. A number this store
        has used (a record, or the history of a token deleted here) is a
        ``ConflictError`` unless ``replace``: then its record, secrets and history are
        replaced. A name or code another token holds is a ``ConflictError`` always.
        """
        ...

    def ensure_secrets_writable(self) -> None:
        """Raise ``SecretStoreError`` unless secrets can be kept securely right now.

        Called before asking for a secret, so none is asked for that could not be kept:
        the local store needs its OS keyring (the data key); the team store keeps
        secrets itself and needs none.
        """
        ...

    def secrets(self, number: int) -> TokenSecrets | None:
        """The secrets of token ``number``; ``None`` when none are stored."""
        ...

    def client_secret(self, definition: str, client_id: str) -> str | None:
        """The client secret of ``client_id`` in ``definition``; ``None`` when none is stored."""
        ...

    def set_client_secret(self, definition: str, client_id: str, secret: str) -> None:
        """Store the client secret of ``client_id`` in ``definition``."""
        ...

    def delete_client_secret(self, definition: str, client_id: str) -> bool:
        """Remove the stored client secret of ``client_id`` in ``definition``."""
        ...

    def secret_summary(self, *, verify: bool) -> SecretSummary:
        """The data key and what it protects (``verify``: open every value)."""
        ...

    def rotate_key(self, progress: Callable[[int], None] | None = None) -> RotationResult:
        """Seal every secret under a new key version; resumable."""
        ...

    def reset_key(self, actor: Actor, now: datetime) -> list[str]:
        """Give up the secrets that cannot be opened; the names of the tokens and clients."""
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

    def refresh_lease(self, number: int, holder: str, ttl: float) -> RefreshLease:
        """The lease that serialises refreshes of token ``number`` (not taken yet).

        ``holder`` names this process (user, host, process id) to whoever finds the lease
        held; ``ttl`` is how many seconds the holder needs it at most while the store
        answers. It lasts that long when its holder never releases it; a store whose
        calls wait out an outage adds the time those waits may take, so that a live
        holder's lease never ends under it (a store whose holders cannot die holding it
        may ignore both).
        """
        ...

    def actor_identity(self) -> str | None:
        """Who the store knows this process as (the team store's entity or role), once.

        Recorded with each change next to the OS user and the unit; ``None`` when the
        store has no identities of its own (the local store).
        """
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
        secrets: TokenSecrets | None = None,
    ) -> Token:
        """Apply ``changes`` (and store ``secrets``) with one history event, in one transaction."""
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
        secrets: TokenSecrets | None = None,
    ) -> tuple[Token, bool]:
        """Let ``decide`` pick changes from the current record, atomically; ``None`` = none.

        ``secrets`` are stored with the changes, and only when there are changes.
        """
        ...

    def delete(self, number: int, actor: Actor, now: datetime, *, detail: str | None) -> bool:
        """Remove the record and its secrets (``True`` if it had any); history keeps ``deleted``."""
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

    def token_calls(self, budget: str, since: datetime) -> list[TokenCall]:
        """The token-endpoint calls counted for ``budget`` at or after ``since``, oldest first.

        ``budget`` names one app and account (:func:`tokenctl.services.budget.budget_key`);
        on the team store every machine's calls count.
        """
        ...

    def count_token_call(
        self,
        budget: str,
        call: TokenCall,
        decide: Callable[[Sequence[TokenCall]], datetime | None],
        *,
        keep_since: datetime,
    ) -> datetime | None:
        """Count ``call`` if ``decide`` allows it, atomically.

        ``decide`` sees the calls counted since ``keep_since`` (older ones are forgotten)
        and returns ``None`` to allow the call, which is then counted, or the time from
        which one would be allowed, which this returns (nothing counted). A concurrent
        count by another process (or machine) is never lost.
        """
        ...

    def notices(self) -> list[NoticeMark]:
        """The last notice sent about each token, per webhook and channel (see NoticeMark).

        What ``check`` and ``renew --all`` compare a token's state with, so that a state
        is notified once, not on every run; on the team store every machine's notices.
        """
        ...

    def mark_notice(
        self, number: int, key: str, expected: str | None, state: str | None, now: datetime
    ) -> bool:
        """Set the mark ``key`` of token ``number`` to ``state`` (``None``: remove it).

        Only if it is ``expected`` now (``None``: there is none), atomically; ``False``
        (nothing changed) when it is not: another process (or machine) has just sent that
        notice, or taken it back. Claimed before a notice is sent, so two machines never
        both send it; put back to ``expected`` when it could not be delivered.
        """
        ...

    def webhook_secret(self, receiver: str) -> str | None:
        """The signing secret of the webhook ``receiver`` (a digest of its URL); ``None``: none."""
        ...

    def set_webhook_secret(self, receiver: str, secret: str) -> None:
        """Store the signing secret of the webhook ``receiver`` (replacing one)."""
        ...

    def delete_webhook_secret(self, receiver: str) -> bool:
        """Remove the signing secret of the webhook ``receiver``; ``True`` if there was one."""
        ...

    def check_integrity(self) -> list[str]:
        """Problems found in the store; empty when it is sound."""
        ...

    def store_facts(self) -> Mapping[str, Any]:
        """Which store this is and what it says of itself (``store status``, ``doctor``).

        ``kind`` (``local`` or ``openbao``) and, by kind, where it is and what it may do
        (docs/json.md, ``store status``). Never reads a record or a secret.
        """
        ...

    def describe(self) -> Mapping[str, Any]:
        """Facts for ``doctor``: location, schema version, counts."""
        ...

    def close(self) -> None:
        """Release the connection."""
        ...


class UpdateThroughUpdateIf:
    """``update`` for an inventory that has ``update_if``: the one read-modify-write.

    Both stores inherit it, so an unconditional change is exactly a conditional one
    that always applies (same transaction, same history event, same secrets handling).
    """

    def update(
        self: Inventory,
        number: int,
        changes: TokenChanges,
        actor: Actor,
        now: datetime,
        *,
        event: str,
        outcome: str = "ok",
        detail: str | None = None,
        secrets: TokenSecrets | None = None,
    ) -> Token:
        """Apply ``changes`` (and store ``secrets``) with one history event, atomically."""
        token, _ = self.update_if(
            number,
            lambda _current: changes,
            actor,
            now,
            event=event,
            outcome=outcome,
            detail=detail,
            secrets=secrets,
        )
        return token
