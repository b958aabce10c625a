"""The one refresh transaction: lock, re-read, call the provider, persist, record.

Two faces share its steps (:class:`_Steps`):

* :func:`refresh_token` (sync) for ``renew``, ``token``, ``exec`` and the probe;
* :func:`refresh_token_async` for ``renew --all``: the same steps, the blocking ones on
  the one inventory thread it is given (the inventory is one SQLite connection), so no
  coroutine waits for another's SQLite call. Only the provider call differs: there it
  is awaited.

Under the token's inter-process lock the record is read again: another process may
have renewed it meanwhile, and then that result is used. The refresh token stored now
is sent; the new secrets and the record that says they exist commit in one transaction.
When that fails after the provider answered (it may have rotated the refresh token), the
new token set is kept in a private file until the next refresh stores it
(:mod:`tokenctl.services.unsaved`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tokenctl.context import AppContext
from tokenctl.definitions import DefinitionKind
from tokenctl.definitions.model import Definition
from tokenctl.errors import AuthorizationError, InventoryError, SecretStoreError, TokenctlError
from tokenctl.fsutil import exclusive_lock
from tokenctl.models import Token, TokenSecrets
from tokenctl.services.fix_commands import fix_command

if TYPE_CHECKING:
    from collections.abc import Mapping
    from concurrent.futures import Executor

    from tokenctl.oauth.client import ProviderClient
    from tokenctl.oauth.grants import RefreshedState
    from tokenctl.oauth.provider import OAuthFailure


#: How a token whose refresh token the provider refused is marked (``invalid_reason``
#: starts with it); the probe leaves such a token invalid.
REFRESH_REFUSED = "refresh refused"


class NeedsLogin(AuthorizationError):  # noqa: N818 - reads as a state
    """No refresh is possible: only an interactive login can renew the token.

    ``fix`` is the command that logs in (the hint says to run it); ``reason`` is the
    short form ``renew --all`` reports per token.
    """

    def __init__(self, message: str, *, fix: str | None = None, reason: str | None = None):
        super().__init__(message, hint=f"run `{fix}`" if fix else None)
        self.fix = fix
        self.reason = reason or message


@dataclass(frozen=True)
class RefreshOutcome:
    """What a refresh did."""

    token: Token
    refreshed: bool  # False: another process had renewed it meanwhile
    notes: tuple[str, ...] = ()  # for the user, such as an unusable lifetime


#: The parts of a token set a refresh replaces.
_TOKEN_SET = ("access_token", "refresh_token", "id_token", "token_type")

#: How often ``renew --all`` looks again at a token lock another process holds.
LOCK_POLL_SECONDS = 0.05


def token_lock_path(ctx: AppContext, token: Token) -> Path:
    """The file whose lock serialises every change of ``token``'s secrets across processes."""
    return ctx.paths.locks_dir / f"token-{token.number}.lock"


@contextlib.contextmanager
def token_lock(ctx: AppContext, token: Token) -> Iterator[None]:
    """Serialise refreshes (and re-logins) of one token across processes."""
    with exclusive_lock(token_lock_path(ctx, token)):
        yield


def mark_refresh_refused(ctx: AppContext, current: Token, now: datetime) -> None:
    """Record that the provider refused the refresh token: the token is invalid."""
    ctx.inventory.update(
        current.number,
        {"invalid_at": now, "invalid_reason": f"{REFRESH_REFUSED} (invalid_grant)"},
        ctx.actor(),
        now,
        event="renewed",
        outcome="invalid_grant",
        detail="the provider refused the refresh token",
    )


class _Steps:
    """The steps of one token's refresh, each sync; the faces decide where each runs."""

    def __init__(self, ctx: AppContext, token: Token, client: ProviderClient) -> None:
        self.ctx = ctx
        self.token = token
        self.client = client
        self.current = token
        self.stored = TokenSecrets()
        self.now = ctx.now()
        #: Whether the refresh token sent is one kept by an earlier refresh whose store
        #: write failed (:mod:`tokenctl.services.unsaved`).
        self.from_unsaved = False

    def reread(self) -> RefreshOutcome | str:
        """Inventory, under the lock: the other process's result if it renewed meanwhile.

        Otherwise the refresh token stored now; without one only a login helps.
        """
        current = self.ctx.inventory.get(self.token.number)
        self.current = current
        if current.secret_set_at != self.token.secret_set_at and current.invalid_at is None:
            return RefreshOutcome(current, refreshed=False)
        from tokenctl.services.unsaved import unsaved_secrets

        stored = self.ctx.inventory.secrets(current.number)
        kept = unsaved_secrets(self.ctx, current)
        if kept is not None:  # newer than the stored set, whose refresh token was rotated
            newer = {name: getattr(kept, name) for name in _TOKEN_SET if getattr(kept, name)}
            stored = replace(stored or TokenSecrets(), **newer)
            self.from_unsaved = True
        if stored is None or not stored.refresh_token:
            raise NeedsLogin(
                f"token {self.current.name!r} has no refresh token",
                fix=fix_command(self.current.name, DefinitionKind.OAUTH2),
                reason="no refresh token",
            )
        self.stored = stored
        self.now = self.ctx.now()
        return stored.refresh_token

    def refused(self, failure: OAuthFailure) -> TokenctlError:
        """Inventory: the error to raise for a refusal; ``invalid_grant`` marks the token."""
        if failure.error != "invalid_grant":
            return failure
        mark_refresh_refused(self.ctx, self.current, self.now)
        return NeedsLogin(
            f"the provider refused the refresh token of {self.current.name!r} "
            "(invalid_grant): it was revoked, expired or already used",
            fix=fix_command(self.current.name, DefinitionKind.OAUTH2),
            reason="the provider refused the refresh token (invalid_grant)",
        )

    def new_state(self, response: Mapping[str, Any]) -> RefreshedState:
        """No I/O: the secrets and fields the provider's answer gives."""
        from tokenctl.oauth.grants import refreshed_state

        return refreshed_state(
            self.current, self.client.definition, self.stored, response, self.now
        )

    def record(self, state: RefreshedState) -> RefreshOutcome:
        """Inventory: the new token set, the record and its history entry, in one transaction.

        When the store fails, the provider's new set is kept in a private file (the
        refresh token just sent may be invalid now) and the error says where.
        """
        from tokenctl.services.unsaved import forget_unsaved

        try:
            saved = self.ctx.inventory.update(
                self.current.number,
                state.fields,
                self.ctx.actor(),
                self.now,
                event="renewed",
                detail=state.detail,
                secrets=state.secrets,
            )
        except (SecretStoreError, InventoryError) as error:
            raise self._unsaved(state, error) from None
        if self.from_unsaved:
            forget_unsaved(self.ctx, self.current)
        return RefreshOutcome(saved, refreshed=True, notes=state.notes)

    def _unsaved(self, state: RefreshedState, error: TokenctlError) -> TokenctlError:
        """Keep the set the store could not take; the error that says so (same exit code)."""
        from tokenctl.services.unsaved import keep_unsaved

        name = self.current.name
        try:
            path = keep_unsaved(self.ctx, self.current, state.secrets, self.now)
        except OSError as failure:
            kept = f"and keeping them in a file failed too ({failure.strerror or failure})"
        else:
            kept = f"they are kept in {path} until they can be"
        kind = SecretStoreError if isinstance(error, SecretStoreError) else InventoryError
        return kind(
            f"the provider renewed {name!r}, but the new tokens could not be stored: "
            f"{error.message}; {kept}",
            hint=f"once the store answers again, run `tokenctl renew {name}`: it renews with "
            "the kept refresh token and stores the result (the provider may no longer "
            "accept the stored one)",
        )


def refresh_token(ctx: AppContext, token: Token, definition: Definition) -> RefreshOutcome:
    """Refresh without a browser, safely against other processes doing the same.

    Raises :class:`NeedsLogin` when only an interactive login can renew the token; says
    any note about the answer (an unusable lifetime) on stderr.
    """
    from tokenctl.oauth.provider import OAuthFailure

    client = ctx.provider_client(definition, token.attributes)
    steps = _Steps(ctx, token, client)
    with token_lock(ctx, token):
        refresh = steps.reread()
        if isinstance(refresh, RefreshOutcome):
            return refresh
        try:
            response = client.refresh(refresh)
        except OAuthFailure as failure:
            raise steps.refused(failure) from None
        outcome = steps.record(steps.new_state(response))
    for note in outcome.notes:
        ctx.io.warn(note)
    return outcome


async def refresh_token_async(
    ctx: AppContext, token: Token, client: ProviderClient, inventory_thread: Executor
) -> RefreshOutcome:
    """:func:`refresh_token` for an event loop; its notes are left to the caller.

    ``inventory_thread`` runs every inventory step (one thread: the inventory is one
    connection). The lock is polled on the loop, never waited for in a thread: a run
    with many tokens held by another process would otherwise fill the thread pool with
    waits while the holders need it.
    """
    import asyncio

    from tokenctl.fsutil import FileLock
    from tokenctl.oauth.provider import OAuthFailure

    loop = asyncio.get_running_loop()
    steps = _Steps(ctx, token, client)
    lock = FileLock(token_lock_path(ctx, token))
    try:
        while not lock.try_acquire():
            await asyncio.sleep(LOCK_POLL_SECONDS)
        refresh = await loop.run_in_executor(inventory_thread, steps.reread)
        if isinstance(refresh, RefreshOutcome):
            return refresh
        try:
            response = await client.refresh_async(refresh)
        except OAuthFailure as failure:
            raise await loop.run_in_executor(inventory_thread, steps.refused, failure) from None
        state = steps.new_state(response)
        return await loop.run_in_executor(inventory_thread, steps.record, state)
    finally:
        lock.release()
