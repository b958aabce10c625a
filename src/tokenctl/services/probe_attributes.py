"""Values a definition records from its ``probe_url`` answer (``probe_attributes``).

At the login they are always read (:mod:`tokenctl.services.login`). A definition with
``probe_attributes_always`` has values that belong to the access token rather than to
the login — Twinfield's API cluster (``twf.clusterUrl`` of ``accesstokenvalidation``)
— so they are read again after every refresh and on every probe, and the record
follows them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tokenctl.definitions.model import OAuth2Settings
from tokenctl.errors import TokenctlError
from tokenctl.models import Token, TokenChanges

if TYPE_CHECKING:
    from concurrent.futures import Executor

    from tokenctl.context import AppContext
    from tokenctl.oauth.client import ProviderClient


#: The probe attribute that names the account when no id token or userinfo does (Exact
#: Online's ``Me.UserName``): taken as the account at the login, never kept as an attribute.
ACCOUNT_ATTRIBUTE = "account"


def values_from(settings: OAuth2Settings, body: Any) -> dict[str, str]:
    """The ``probe_attributes`` found in a probe answer: attribute name -> value."""
    from tokenctl.oauth.json_path import dig

    found = {name: dig(body, path) for name, path in settings.probe_attributes.items()}
    return {name: value for name, value in found.items() if value is not None}


def _names(client: ProviderClient) -> str:
    return ", ".join(sorted(client.settings.probe_attributes))


def recordable(values: Mapping[str, str]) -> dict[str, str]:
    """The values recorded as attributes after a refresh or probe: the account is the login's."""
    return {name: value for name, value in values.items() if name != ACCOUNT_ATTRIBUTE}


def follows_token(settings: OAuth2Settings) -> bool:
    """Whether the definition records its probe attributes again after refreshes and probes."""
    return bool(
        settings.probe_attributes_always and settings.probe_attributes and settings.probe_url
    )


def ask(client: ProviderClient, access_token: str | None) -> tuple[dict[str, str], str | None]:
    """Provider: the probe attributes for ``access_token``, and a note when it failed.

    Never raises for the provider: the refresh before it is stored and stands.
    """
    settings = client.settings
    if not follows_token(settings) or not access_token:
        return {}, None
    names = ", ".join(sorted(settings.probe_attributes))
    try:
        status, body = client.probe_get(access_token)
    except TokenctlError as error:
        return {}, f"{names} not recorded: {error.message}"
    if not 200 <= status < 300:
        return {}, f"{names} not recorded: {settings.probe_url} answered HTTP {status}"
    values = recordable(values_from(settings, body))
    if not values:
        return {}, f"{names} not recorded: the answer of {settings.probe_url} holds none of them"
    return values, None


def attribute_changes(current: Token, values: Mapping[str, str]) -> TokenChanges | None:
    """The record's new attributes with ``values`` laid over them; ``None`` when unchanged."""
    merged = {**current.attributes, **values}
    return None if merged == current.attributes else {"attributes": merged}


def store(ctx: AppContext, token: Token, values: Mapping[str, str]) -> Token:
    """Inventory: record changed values (one ``probed`` event); unchanged ones write nothing."""
    if not values:
        return token
    from tokenctl.services.probe import ProbeResult

    now = ctx.now()

    def decide(current: Token) -> TokenChanges | None:
        changes = attribute_changes(current, values)
        if changes is not None:
            changes.update({"probed_at": now, "probe_result": ProbeResult.VALID})
        return changes

    shown = ", ".join(f"{name} {value}" for name, value in sorted(values.items()))
    updated, _ = ctx.inventory.update_if(
        token.number,
        decide,
        ctx.actor(),
        now,
        event="probed",
        outcome=ProbeResult.VALID,
        detail=f"after the refresh: recorded {shown}",
    )
    return updated


def record_after_refresh(ctx: AppContext, token: Token, client: ProviderClient) -> Token:
    """After a stored refresh: ask ``probe_url`` about the new access token and record it."""
    if not follows_token(client.settings):
        return token
    try:
        secrets = ctx.inventory.secrets(token.number)
        values, note = ask(client, secrets.access_token if secrets else None)
        if note:
            ctx.io.warn(f"{token.name}: {note}")
        return store(ctx, token, values)
    except TokenctlError as error:  # the refresh before it is stored and stands
        ctx.io.warn(f"{token.name}: {_names(client)} not recorded: {error.message}")
        return token


async def record_after_refresh_async(
    ctx: AppContext, token: Token, client: ProviderClient, inventory_steps: Executor
) -> Token:
    """:func:`record_after_refresh` for ``renew --all``: inventory steps on ``inventory_steps``.

    The provider call runs in a thread: the refresh it follows is already stored, so
    nothing is lost if it is cancelled.
    """
    import asyncio

    from tokenctl.inventory.worker import step_future

    if not follows_token(client.settings):
        return token
    try:
        secrets = await step_future(inventory_steps, ctx.inventory.secrets, token.number)
        access_token = secrets.access_token if secrets else None
        values, note = await asyncio.to_thread(ask, client, access_token)
        if note:
            ctx.io.warn(f"{token.name}: {note}")
        return await step_future(inventory_steps, store, ctx, token, values)
    except TokenctlError as error:  # the refresh before it is stored and stands
        ctx.io.warn(f"{token.name}: {_names(client)} not recorded: {error.message}")
        return token
