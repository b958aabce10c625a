"""``renew --all``: which tokens, how many at once, and the report.

Each token is refreshed by the one refresh transaction's async face
(:func:`tokenctl.services.refresh.refresh_token_async`), exactly as safely as a single
``renew``. Concurrency is bounded overall and per token-endpoint host.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from tokenctl.context import AppContext
from tokenctl.definitions import DefinitionKind
from tokenctl.definitions.model import Definition
from tokenctl.errors import TokenctlError
from tokenctl.models import Token
from tokenctl.services.access_decision import refresh_due
from tokenctl.services.fix_commands import fix_command
from tokenctl.timeutil import to_iso

if TYPE_CHECKING:
    from tokenctl.oauth.client import ProviderClient

DEFAULT_CONCURRENCY = 8
PER_HOST = 4


class BulkOutcome(StrEnum):
    """What ``renew --all`` did for one token."""

    REFRESHED = "refreshed"
    CONCURRENT = "concurrent"  # another process renewed it meanwhile
    #: Not refreshed now: a refresh would pass the definition's token-call limits; the
    #: detail says from when it is possible (the next run picks it up).
    DEFERRED = "deferred"
    NEEDS_LOGIN = "needs-login"
    FAILED = "failed"


@dataclass(frozen=True)
class BulkItem:
    """The outcome for one token."""

    token: Token
    outcome: BulkOutcome
    detail: str = ""
    fix: str | None = None
    #: A deferred token whose access token has expired meanwhile: unusable until then.
    unusable: bool = False


@dataclass(frozen=True)
class BulkReport:
    """The outcome of ``renew --all``."""

    items: list[BulkItem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every selected token was renewed, or deferred to keep a provider limit."""
        return all(
            item.outcome in (BulkOutcome.REFRESHED, BulkOutcome.CONCURRENT)
            or (item.outcome is BulkOutcome.DEFERRED and not item.unusable)
            for item in self.items
        )


def select_tokens(
    ctx: AppContext, *, within: timedelta | None, definition: str | None
) -> list[tuple[Token, Definition]]:
    """Effective OAuth tokens (of ``definition``) whose access token expires ``within``.

    A definition's refresh margin also holds here: a provider that limits token calls
    (Exact Online) is only asked when the access token is about to expire.
    """
    if definition is not None:
        ctx.definitions.require(definition)  # a misspelt name must not pass silently
    now = ctx.now()
    selected = []
    for token in ctx.inventory.tokens():
        token_definition = ctx.definitions.get(token.definition)
        if token_definition is None or token_definition.oauth2 is None:
            continue
        if not token.is_effective or (definition and token.definition != definition):
            continue
        # No --within and no configured margin: no limit; an unknown expiry is renewed.
        margin = token_definition.lifetimes.refresh_margin
        if not (
            refresh_due(token.expires_at, within, now, unknown_expiry_due=True)
            and refresh_due(token.expires_at, margin, now, unknown_expiry_due=True)
        ):
            continue
        selected.append((token, token_definition))
    return selected


#: What each selected token is refreshed with, or why it cannot be.
Prepared = dict[int, "ProviderClient | BulkItem"]


def _prepare(ctx: AppContext, selected: list[tuple[Token, Definition]]) -> Prepared:
    """Each token's provider client, endpoints and credentials ready, before the loop runs.

    Clients are shared (one per definition and placeholder values), so discovery runs
    once per distinct issuer, not once per token. One unconfigured definition or
    unreachable issuer must not stop the others: its tokens fail on their own.
    """
    prepared: Prepared = {}
    for token, definition in selected:
        if token.secret_set_at is None:
            prepared[token.number] = BulkItem(
                token,
                BulkOutcome.NEEDS_LOGIN,
                "no token was ever retrieved",
                fix_command(token.name, DefinitionKind.OAUTH2),
            )
            continue
        try:
            client = ctx.provider_client(definition, token.attributes)
            client.credentials  # noqa: B018 - read now, in order, as a missing secret fails
            client.endpoints  # noqa: B018 - resolved now, outside the event loop
        except TokenctlError as error:
            prepared[token.number] = BulkItem(token, BulkOutcome.FAILED, error.message)
        else:
            prepared[token.number] = client
    return prepared


async def _renew_one(
    ctx: AppContext, token: Token, client: ProviderClient, inventory_steps: Executor
) -> BulkItem:
    from tokenctl.oauth.provider import OAuthFailure
    from tokenctl.services.budget import CallBudgetExhausted
    from tokenctl.services.refresh import NeedsLogin, refresh_token_async

    try:
        outcome = await refresh_token_async(ctx, token, client, inventory_steps)
    except NeedsLogin as error:
        return BulkItem(token, BulkOutcome.NEEDS_LOGIN, error.reason, error.fix)
    except CallBudgetExhausted as deferred:
        expired = token.expires_at is not None and token.expires_at <= ctx.now()
        return BulkItem(
            token,
            BulkOutcome.DEFERRED,
            f"the provider's token-call limit; possible from {to_iso(deferred.possible_at)}"
            + ("; its access token has expired: unusable until then" if expired else ""),
            unusable=expired,
        )
    except OAuthFailure as failure:
        return BulkItem(token, BulkOutcome.FAILED, f"{failure.error}: {failure.description or ''}")
    if not outcome.refreshed:
        return BulkItem(
            outcome.token, BulkOutcome.CONCURRENT, "renewed meanwhile by another process"
        )
    for note in outcome.notes:
        ctx.io.warn(f"{token.name}: {note}")
    from tokenctl.services.probe_attributes import record_after_refresh_async

    renewed = await record_after_refresh_async(ctx, outcome.token, client, inventory_steps)
    return BulkItem(renewed, BulkOutcome.REFRESHED)


async def _renew_all(
    ctx: AppContext,
    selected: list[tuple[Token, Definition]],
    prepared: Prepared,
    concurrency: int,
    on_done: Callable[[BulkItem], None],
    inventory_steps: Executor,
) -> list[BulkItem]:
    overall = asyncio.Semaphore(concurrency)
    per_host: dict[str, asyncio.Semaphore] = {}

    async def run(token: Token, definition: Definition) -> BulkItem:
        client = prepared[token.number]
        if isinstance(client, BulkItem):
            on_done(client)
            return client
        host = urlsplit(client.endpoints.token_endpoint).netloc
        settings = definition.oauth2
        limit = (settings.max_concurrent_requests if settings else None) or PER_HOST
        host_limit = per_host.setdefault(host, asyncio.Semaphore(min(limit, concurrency)))
        async with overall, host_limit:
            try:
                item = await _renew_one(ctx, token, client, inventory_steps)
            except TokenctlError as error:
                item = BulkItem(token, BulkOutcome.FAILED, error.message)
            except Exception as error:  # one token's surprise must not cancel the others
                item = BulkItem(
                    token, BulkOutcome.FAILED, f"internal error ({type(error).__name__})"
                )
        on_done(item)
        return item

    try:
        return list(await asyncio.gather(*(run(t, d) for t, d in selected)))
    finally:
        for client in {id(c): c for c in prepared.values() if not isinstance(c, BulkItem)}.values():
            await client.aclose()


def renew_all(
    ctx: AppContext,
    *,
    within: timedelta | None = None,
    definition: str | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    on_start: Callable[[int], None] | None = None,
    on_done: Callable[[BulkItem], None] | None = None,
    notify: bool = False,
) -> BulkReport:
    """Refresh every selected token; never opens a browser.

    ``notify``: tell config.toml's webhooks of each token whose renewal failed, needs a
    login, or works again, once per change (:mod:`tokenctl.services.notify`).
    """
    report = _renew_selected(ctx, within, definition, concurrency, on_start, on_done)
    if notify and ctx.config.webhooks:
        from tokenctl.services.notify import renewal_observations, send_notices

        send_notices(ctx, renewal_observations(ctx, report), "renew --all")
    return report


def _renew_selected(
    ctx: AppContext,
    within: timedelta | None,
    definition: str | None,
    concurrency: int,
    on_start: Callable[[int], None] | None,
    on_done: Callable[[BulkItem], None] | None,
) -> BulkReport:
    selected = select_tokens(ctx, within=within, definition=definition)
    if on_start is not None:
        on_start(len(selected))
    if not selected:
        return BulkReport([])
    ctx.inventory.ensure_secrets_writable()
    prepared = _prepare(ctx, selected)
    from tokenctl.inventory.worker import LoopGroups, server_steps

    # The local store's steps run on the loop itself, renewals recorded at about the same
    # time sharing one commit; a team store's ask a server: on threads, off the loop, as
    # many as renewals run at once.
    steps: Executor = (
        server_steps(concurrency)
        if ctx.inventory.remote
        else LoopGroups(ctx.inventory.group_commit)
    )
    with steps:
        items = asyncio.run(
            _renew_all(ctx, selected, prepared, concurrency, on_done or (lambda _: None), steps)
        )
    return BulkReport(items)
