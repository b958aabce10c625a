"""The one refresh transaction: lock, re-read, call the provider, persist, record.

Two faces share its steps (:class:`_Steps`):

* :func:`refresh_token` (sync) for ``renew``, ``token``, ``exec`` and the probe;
* :func:`refresh_token_async` for ``renew --all``: the same steps, the inventory's on
  the executor it is given (:mod:`tokenctl.inventory.worker`: the local store's on the
  loop, a team store's on a pool of threads), their results handed on only once
  committed. Only the provider call differs: there it is awaited.

Under the token's lease (the inventory's: a file lock on the local store, a KV key
written by check-and-set on the team store, so one machine at a time) the record is
read again: another process may have renewed it meanwhile, and then that result is
used. The refresh token stored now is sent; the new secrets and the record that says
they exist are written together, by check-and-set on the set read under the lease,
and only then used. When that fails after the provider answered (it may have rotated
the refresh token), the new token set is kept sealed in a private file until the next
refresh stores it (:mod:`tokenctl.services.unsaved`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from tokenctl.context import AppContext
from tokenctl.definitions import DefinitionKind
from tokenctl.definitions.model import Definition
from tokenctl.errors import AuthorizationError, InventoryError, SecretStoreError, TokenctlError
from tokenctl.models import Token, TokenChanges, TokenSecrets
from tokenctl.services.fix_commands import fix_command

#: The parts of a token set a refresh replaces.
_TOKEN_SET = ("access_token", "refresh_token", "id_token", "token_type")
#: A store failure after the provider answered: the new token set is kept (``keep``).
_STORE_FAILURES = (SecretStoreError, InventoryError)

_T = TypeVar("_T")

if TYPE_CHECKING:
    from collections.abc import Mapping
    from concurrent.futures import Executor

    from tokenctl.inventory import RefreshLease
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


#: Seconds a refresh lease outlives the provider call's deadline (the re-read and the
#: writes around the call): the lease's ``ttl``, after which a killed holder's lease is
#: taken over (team store; the local store's lock goes with its process at once).
LEASE_MARGIN_SECONDS = 30.0


def lease_ttl(definition: Definition | None) -> float:
    """How long a refresh lease lasts at most: the provider call's deadline and a margin."""
    settings = None if definition is None else definition.oauth2
    deadline = 0.0 if settings is None else settings.effective_call_deadline.total_seconds()
    return deadline + LEASE_MARGIN_SECONDS


def token_lease(ctx: AppContext, token: Token, ttl: float) -> RefreshLease:
    """The inventory's lease that serialises every change of ``token``'s secrets.

    Across the processes of this machine (local store) or every machine (team store).
    """
    import os
    import uuid

    holder = f"{ctx.user_name()}@{ctx.host_name()} pid {os.getpid()} {uuid.uuid4().hex[:12]}"
    return ctx.inventory.refresh_lease(token.number, holder, ttl)


def release_lease(ctx: AppContext, token: Token, lease: RefreshLease) -> None:
    """Give the lease up; a store that fails now is warned about, never raised.

    The refresh it guarded is over (stored, kept, or failed with its own error, which a
    failing release must not hide), and a lease not given up ends by itself (its ttl).
    """
    try:
        lease.release()
    except TokenctlError as error:
        ctx.io.warn(
            f"{token.name}: the refresh lease could not be given up ({error.message}); "
            "it ends by itself shortly"
        )


@contextlib.contextmanager
def token_lock(ctx: AppContext, token: Token, ttl: float = LEASE_MARGIN_SECONDS) -> Iterator[None]:
    """Serialise refreshes (and re-logins) of one token: hold its lease for the block."""
    lease = token_lease(ctx, token, ttl)
    while not lease.try_acquire():
        ctx.sleep(lease.poll_seconds)
    try:
        yield
    finally:
        release_lease(ctx, token, lease)


def mark_refresh_refused(
    ctx: AppContext, current: Token, now: datetime, error: str = "invalid_grant"
) -> None:
    """Record that the provider refused the refresh token: the token is invalid.

    ``error`` is the provider's error code (``invalid_grant``, or an answer the
    definition names in ``dead_refresh_answers``).
    """
    ctx.inventory.update(
        current.number,
        {"invalid_at": now, "invalid_reason": f"{REFRESH_REFUSED} ({error})"},
        ctx.actor(),
        now,
        event="renewed",
        outcome=error,
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
        definition = self.client.definition
        if definition.limits.any:
            from tokenctl.services.budget import reserve_refresh

            # Counted before the call, under the lease: the provider counts it even when
            # its answer is lost. CallBudgetExhausted when it would pass the limits.
            reserve_refresh(
                self.ctx,
                definition,
                self.client.credentials.client_id,
                current.account,
                current.number,
                current.name,
            )
        return stored.refresh_token

    def refused(self, failure: OAuthFailure) -> TokenctlError:
        """Inventory: the error to raise for a refusal; a dead refresh token marks the token.

        Dead: ``invalid_grant``, or an answer the definition names in
        ``dead_refresh_answers`` (Exact Online's "Old refresh token used."). Any other
        refusal (a wrong client, a provider's limit) leaves the token as it is.
        """
        settings = self.client.definition.oauth2
        if settings is None or not settings.refresh_token_dead(failure.error, failure.description):
            return failure
        if self.from_unsaved:  # the kept refresh token is refused too: of no more use
            from tokenctl.services.unsaved import forget_unsaved

            forget_unsaved(self.ctx, self.current)
        mark_refresh_refused(self.ctx, self.current, self.now, failure.error)
        # The provider's own reason tells revoked from unused too long (Microsoft: AADSTS50173
        # or AADSTS700082; Exact: "Old refresh token used."); its first line only, as the
        # rest is trace ids.
        said = (failure.description or "").strip().splitlines()
        return NeedsLogin(
            f"the provider refused the refresh token of {self.current.name!r} "
            f"({failure.error}): it was revoked, expired or already used"
            + (f"; the provider said: {said[0]}" if said else ""),
            fix=fix_command(self.current.name, DefinitionKind.OAUTH2),
            reason=f"the provider refused the refresh token ({failure.error})",
        )

    def new_state(self, response: Mapping[str, Any]) -> RefreshedState:
        """No I/O: the secrets and fields the provider's answer gives."""
        from tokenctl.oauth.grants import refreshed_state

        return refreshed_state(
            self.current, self.client.definition, self.stored, response, self.now
        )

    def record(self, state: RefreshedState) -> RefreshOutcome:
        """Inventory: the new token set, the record and its history entry, in one transaction.

        Check-and-set on the token set read under the lease: stored only while the
        record still says the secrets are the ones read (``secret_set_at``). Otherwise
        another tokenctl stored a newer set meanwhile (it took over a lease this one
        held past its expiry), and that one stays.
        """
        read = self.current.secret_set_at

        def still_read(current: Token) -> TokenChanges | None:
            return state.fields if current.secret_set_at == read else None

        saved, stored = self.ctx.inventory.update_if(
            self.current.number,
            still_read,
            self.ctx.actor(),
            self.now,
            event="renewed",
            detail=state.detail,
            secrets=state.secrets,
        )
        if not stored:
            note = "another tokenctl stored a newer token set meanwhile; that one is kept"
            return RefreshOutcome(saved, refreshed=False, notes=(note,))
        return RefreshOutcome(saved, refreshed=True, notes=state.notes)

    def forget_kept(self, outcome: RefreshOutcome) -> RefreshOutcome:
        """After the record is durable: a kept set it stored is forgotten."""
        if self.from_unsaved:
            from tokenctl.services.unsaved import forget_unsaved

            forget_unsaved(self.ctx, self.current)
        return outcome

    def keep(self, state: RefreshedState, error: TokenctlError) -> TokenctlError:
        """The store failed after the provider answered: keep the new set; the error to raise.

        The refresh token just sent may be invalid now, so the provider's new set is kept
        sealed in a private file (:mod:`tokenctl.services.unsaved`) and the error (same
        kind, same exit code) says where and what to run.
        """
        from tokenctl.services.unsaved import keep_unsaved

        name = self.current.name
        try:
            path = keep_unsaved(self.ctx, self.current, state.secrets, self.now)
        except OSError as failure:
            kept = f"and keeping them in a file failed too ({failure.strerror or failure})"
        except TokenctlError as failure:
            kept = f"and keeping them failed too ({failure.message})"
        else:
            kept = f"they are kept, sealed, in {path} until they can be"
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
    # Discovery and the client secret before the lease: under it, only the token call
    # (the lease's ttl counts one provider call).
    client.credentials  # noqa: B018
    client.endpoints  # noqa: B018
    steps = _Steps(ctx, token, client)
    with token_lock(ctx, token, lease_ttl(definition)):
        refresh = steps.reread()
        if isinstance(refresh, RefreshOutcome):
            return refresh
        try:
            response = client.refresh(refresh)
        except OAuthFailure as failure:
            raise steps.refused(failure) from None
        state = steps.new_state(response)
        try:
            outcome = steps.forget_kept(steps.record(state))
        except _STORE_FAILURES as error:
            raise steps.keep(state, error) from None
    for note in outcome.notes:
        ctx.io.warn(note)
    if outcome.refreshed:
        # Stored and out of the lease: what the definition reads off the new access token.
        from tokenctl.services.probe_attributes import record_after_refresh

        outcome = replace(outcome, token=record_after_refresh(ctx, outcome.token, client))
    return outcome


async def refresh_token_async(
    ctx: AppContext, token: Token, client: ProviderClient, inventory_steps: Executor
) -> RefreshOutcome:
    """:func:`refresh_token` for an event loop; its notes are left to the caller.

    ``inventory_steps`` (an executor of :mod:`tokenctl.inventory.worker`) runs every
    inventory step, and each try of a team store's lease: on the loop itself for the
    local store, on a pool of threads for the team store. The lease is polled on the
    loop, never waited for in a thread: a run with many tokens held by another process
    would otherwise fill the pool with waits while the holders need it.
    """
    import asyncio

    from tokenctl.inventory.worker import step_future
    from tokenctl.oauth.provider import OAuthFailure

    steps = _Steps(ctx, token, client)
    lease = token_lease(ctx, token, lease_ttl(client.definition))

    async def lease_call(call: Callable[[], _T]) -> _T:
        # A team store's lease asks the server: off the loop. A local lock is a system
        # call that never waits: made here.
        return await step_future(inventory_steps, call) if lease.remote else call()

    try:
        while not await lease_call(lease.try_acquire):
            await asyncio.sleep(lease.poll_seconds)
        refresh = await step_future(inventory_steps, steps.reread)
        if isinstance(refresh, RefreshOutcome):
            return refresh
        try:
            response = await client.refresh_async(refresh)
        except OAuthFailure as failure:
            raise await step_future(inventory_steps, steps.refused, failure) from None
        state = steps.new_state(response)
        # From here the provider's answer may hold the only valid refresh token: the
        # record runs to its end (durable, a group's commit included) even when this
        # task is cancelled (Ctrl-C), and the lease is given up only after it.
        recording = step_future(inventory_steps, steps.record, state)
        try:
            outcome = await asyncio.shield(recording)
        except asyncio.CancelledError:
            await asyncio.wait([recording])
            unstored = recording.exception()
            if isinstance(unstored, _STORE_FAILURES):
                steps.keep(state, unstored)  # the user hears of it from the next refresh
            raise
        except _STORE_FAILURES as error:
            raise await step_future(inventory_steps, steps.keep, state, error) from None
        return steps.forget_kept(outcome)
    finally:
        await lease_call(lambda: release_lease(ctx, token, lease))
