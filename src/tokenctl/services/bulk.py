"""``renew --all``: refresh many tokens concurrently without a browser.

asyncio with authlib's async client on httpx2. Concurrency is bounded overall and per
token-endpoint host. Each token is refreshed as safely as a single ``renew``: under its
inter-process lock, after re-reading the record, persisting the new secrets first.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from tokenctl.context import AppContext
from tokenctl.definitions.model import Definition, DefinitionKind
from tokenctl.errors import TokenctlError
from tokenctl.fsutil import ensure_private_file
from tokenctl.models import Token
from tokenctl.services.fix_commands import fix_command

DEFAULT_CONCURRENCY = 8
PER_HOST = 4


class BulkOutcome(StrEnum):
    """What ``renew --all`` did for one token."""

    REFRESHED = "refreshed"
    CONCURRENT = "concurrent"  # another process renewed it meanwhile
    NEEDS_LOGIN = "needs-login"
    FAILED = "failed"


@dataclass(frozen=True)
class BulkItem:
    """The outcome for one token."""

    token: Token
    outcome: BulkOutcome
    detail: str = ""
    fix: str | None = None


@dataclass(frozen=True)
class BulkReport:
    """The outcome of ``renew --all``."""

    items: list[BulkItem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every selected token was renewed."""
        return all(
            item.outcome in (BulkOutcome.REFRESHED, BulkOutcome.CONCURRENT) for item in self.items
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
        if (
            within is not None
            and token.expires_at is not None
            and (token.expires_at - now > within)
        ):
            continue
        margin = token_definition.lifetimes.refresh_margin
        if margin is not None and token.expires_at is not None and token.expires_at - now > margin:
            continue
        selected.append((token, token_definition))
    return selected


@contextlib.asynccontextmanager
async def _token_lock(ctx: AppContext, token: Token) -> AsyncIterator[None]:
    path = ensure_private_file(ctx.paths.locks_dir / f"token-{token.number}.lock")
    descriptor = os.open(path, os.O_RDWR)
    try:
        await asyncio.to_thread(fcntl.flock, descriptor, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(descriptor, fcntl.LOCK_UN)
    finally:
        os.close(descriptor)


async def _refresh_one(
    ctx: AppContext,
    token: Token,
    definition: Definition,
    client: Any,
    endpoint: str,
) -> BulkItem:
    import httpx2
    from authlib.integrations.base_client import OAuthError

    from tokenctl.oauth.provider import unreachable
    from tokenctl.services.oauth import mark_refresh_refused, refreshed_state, save_refreshed

    seen = token.secret_set_at
    async with _token_lock(ctx, token):
        current = ctx.inventory.get(token.number)
        if current.secret_set_at != seen and current.invalid_at is None:
            return BulkItem(current, BulkOutcome.CONCURRENT, "renewed meanwhile by another process")
        stored = await asyncio.to_thread(ctx.secrets.get, current.secret_ref)
        if stored is None or not stored.refresh_token:
            return BulkItem(
                current,
                BulkOutcome.NEEDS_LOGIN,
                "no refresh token",
                fix_command(current.name, DefinitionKind.OAUTH2),
            )
        try:
            response = await client.refresh_token(endpoint, refresh_token=stored.refresh_token)
        except OAuthError as error:
            if error.error == "invalid_grant":
                mark_refresh_refused(ctx, current, ctx.now())
                return BulkItem(
                    current,
                    BulkOutcome.NEEDS_LOGIN,
                    "the provider refused the refresh token (invalid_grant)",
                    fix_command(current.name, DefinitionKind.OAUTH2),
                )
            return BulkItem(
                current, BulkOutcome.FAILED, f"{error.error}: {error.description or ''}"
            )
        except httpx2.HTTPError as error:  # unreachable, or past the call deadline
            return BulkItem(current, BulkOutcome.FAILED, unreachable(endpoint, error).message)
        except Exception as error:
            return BulkItem(current, BulkOutcome.FAILED, f"{type(error).__name__}")
        now = ctx.now()
        refreshed = refreshed_state(current, definition, stored, response, now)
        await asyncio.to_thread(ctx.secrets.set, current.secret_ref, refreshed.secrets)
        saved = save_refreshed(ctx, current, refreshed, now)
    for note in refreshed.notes:
        ctx.io.warn(f"{current.name}: {note}")
    return BulkItem(saved, BulkOutcome.REFRESHED)


async def _renew_all(
    ctx: AppContext,
    selected: list[tuple[Token, Definition]],
    concurrency: int,
    on_done: Callable[[BulkItem], None],
) -> list[BulkItem]:
    from authlib.integrations.httpx_client import AsyncOAuth2Client

    from tokenctl.definitions.model import fill_placeholders
    from tokenctl.oauth.http import async_client_options
    from tokenctl.oauth.provider import resolve_endpoints, shield_lifetimes
    from tokenctl.services.oauth import client_credentials

    overall = asyncio.Semaphore(concurrency)
    per_host: dict[str, asyncio.Semaphore] = {}
    clients: dict[str, Any] = {}
    token_endpoints: dict[int, str] = {}
    resolved: dict[tuple[str, str | None, str | None], str] = {}
    try:
        setup_failures: dict[int, BulkItem] = {}
        for token, definition in selected:
            # One unconfigured definition or unreachable issuer must not stop the others.
            try:
                if token.secret_set_at is None:
                    setup_failures[token.number] = BulkItem(
                        token,
                        BulkOutcome.NEEDS_LOGIN,
                        "no token was ever retrieved",
                        fix_command(token.name, DefinitionKind.OAUTH2),
                    )
                    continue
                if definition.name not in clients:
                    credentials = client_credentials(ctx, definition)
                    settings = definition.oauth2
                    assert settings is not None
                    clients[definition.name] = AsyncOAuth2Client(
                        client_id=credentials.client_id,
                        client_secret=credentials.client_secret,
                        token_endpoint_auth_method=credentials.auth_method,
                        **async_client_options(settings.effective_call_deadline.total_seconds()),
                    )
                    shield_lifetimes(clients[definition.name])
                # Placeholders (tenant, environment) may give each token its own endpoint;
                # discovery runs once per distinct issuer, not once per token.
                filled = fill_placeholders(definition, token.attributes)
                settings = filled.oauth2
                assert settings is not None
                key = (definition.name, settings.issuer, settings.token_endpoint)
                if key not in resolved:
                    resolved[key] = resolve_endpoints(filled).token_endpoint
                token_endpoints[token.number] = resolved[key]
            except TokenctlError as error:
                setup_failures[token.number] = BulkItem(token, BulkOutcome.FAILED, error.message)

        async def run(token: Token, definition: Definition) -> BulkItem:
            if token.number in setup_failures:
                item = setup_failures[token.number]
                on_done(item)
                return item
            client = clients[definition.name]
            endpoint = token_endpoints[token.number]
            host = urlsplit(endpoint).netloc
            settings = definition.oauth2
            limit = (settings.max_concurrent_requests if settings else None) or PER_HOST
            host_limit = per_host.setdefault(host, asyncio.Semaphore(min(limit, concurrency)))
            async with overall, host_limit:
                try:
                    item = await _refresh_one(ctx, token, definition, client, endpoint)
                except TokenctlError as error:
                    item = BulkItem(token, BulkOutcome.FAILED, error.message)
                except Exception as error:  # one token's surprise must not cancel the others
                    item = BulkItem(
                        token, BulkOutcome.FAILED, f"internal error ({type(error).__name__})"
                    )
            on_done(item)
            return item

        return list(await asyncio.gather(*(run(t, d) for t, d in selected)))
    finally:
        for client in clients.values():
            await client.aclose()


def renew_all(
    ctx: AppContext,
    *,
    within: timedelta | None = None,
    definition: str | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    on_start: Callable[[int], None] | None = None,
    on_done: Callable[[BulkItem], None] | None = None,
) -> BulkReport:
    """Refresh every selected token; never opens a browser."""
    selected = select_tokens(ctx, within=within, definition=definition)
    if on_start is not None:
        on_start(len(selected))
    if not selected:
        return BulkReport([])
    ctx.secrets.ensure_available()
    items = asyncio.run(_renew_all(ctx, selected, concurrency, on_done or (lambda _: None)))
    return BulkReport(items)
