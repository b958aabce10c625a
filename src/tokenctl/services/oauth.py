"""OAuth services: client settings, refresh under a lock, the validity probe, revocation.

The interactive login is :mod:`tokenctl.services.login`. Everything talks to the
provider through :mod:`tokenctl.oauth.provider` (authlib on httpx2).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from tokenctl.context import AppContext
from tokenctl.definitions.model import Definition, DefinitionKind, OAuth2Settings
from tokenctl.errors import AuthorizationError, ConfigError, TokenctlError, UsageError
from tokenctl.fsutil import exclusive_lock
from tokenctl.models import Token, TokenChanges, TokenSecrets
from tokenctl.oauth.provider import (
    ClientCredentials,
    Endpoints,
    Grant,
    OAuthFailure,
    ProviderUnreachable,
)
from tokenctl.services.fix_commands import fix_command
from tokenctl.timeutil import add_checked


class NeedsLogin(AuthorizationError):  # noqa: N818 - reads as a state
    """No refresh is possible: only an interactive login can renew the token."""


def client_secret_ref(definition_name: str, client_id: str) -> str:
    """The keyring entry that holds the secret of one client registration of a definition.

    The client id is part of the name so that a definition switched to another client
    never sends the old client's secret.
    """
    return f"definition-{definition_name}-client-{client_id}"


def oauth_settings(definition: Definition) -> OAuth2Settings:
    """The definition's OAuth settings; a static definition is a usage error."""
    if definition.oauth2 is None:
        raise UsageError(f"definition {definition.name!r} is not an OAuth definition")
    return definition.oauth2


def client_credentials(ctx: AppContext, definition: Definition) -> ClientCredentials:
    """The client registration: id from the definition, secret from the keyring."""
    settings = oauth_settings(definition)
    if not settings.client_id:
        raise ConfigError(
            f"definition {definition.name!r} has no client id",
            hint=f"run `tokenctl definitions configure {definition.name} --client-id ID`",
        )
    stored = ctx.secrets.get(client_secret_ref(definition.name, settings.client_id))
    secret = stored.client_secret if stored else None
    method = settings.token_endpoint_auth_method or ("client_secret_basic" if secret else "none")
    if method != "none" and not secret:
        raise ConfigError(
            f"definition {definition.name!r} uses {method} but no client secret is stored",
            hint=f"run `tokenctl definitions configure {definition.name} --client-id "
            f"{settings.client_id} --client-secret-stdin`",
        )
    return ClientCredentials(settings.client_id, secret, method)


# -- storing a grant -------------------------------------------------------------------------


def secrets_of(grant: Grant, previous: TokenSecrets | None = None) -> TokenSecrets:
    """The secret set to store: a refresh response may omit the refresh and id token."""
    return TokenSecrets(
        access_token=grant.access_token,
        refresh_token=grant.refresh_token or (previous.refresh_token if previous else None),
        id_token=grant.id_token or (previous.id_token if previous else None),
        token_type=grant.token_type,
        # Who the entry belongs to is kept across refreshes (see models.ENTRY_FACTS).
        definition=previous.definition if previous else None,
        attributes=previous.attributes if previous else None,
    )


def grant_fields(
    grant: Grant, definition: Definition, now: datetime, *, login: bool, secrets: TokenSecrets
) -> TokenChanges:
    """Inventory fields describing a grant (never its secret values).

    ``secrets`` is what will be stored for it: whether that holds a refresh token and an
    id token is recorded, as proof of ``offline_access`` and ``openid``.
    """
    lifetimes = definition.lifetimes
    refresh_expires_at = grant.refresh_expires_at
    if refresh_expires_at is None and login and lifetimes.refresh_token is not None:
        refresh_expires_at = add_checked(now, lifetimes.refresh_token)
    fields: TokenChanges = {
        "expires_at": grant.expires_at,
        "granted_scopes": grant.scopes,
        "secret_set_at": now,
        "refreshed_at": now,
        "invalid_at": None,
        "invalid_reason": None,
        "has_refresh_token": bool(secrets.refresh_token),
        "has_id_token": bool(secrets.id_token),
    }
    if refresh_expires_at is not None or login:
        fields["refresh_expires_at"] = refresh_expires_at
    return fields


def missing_scopes(grant: Grant, definition: Definition) -> list[str]:
    """Required scopes the new grant does not evidence (:func:`tokenctl.models.missing_scopes`)."""
    from tokenctl.models import missing_scopes as not_evidenced

    return not_evidenced(
        definition.required_scopes,
        grant.scopes,
        has_refresh_token=bool(grant.refresh_token),
        has_id_token=bool(grant.id_token),
    )


def revoke_grant(
    ctx: AppContext,
    definition: Definition,
    secrets: TokenSecrets,
    endpoints: Endpoints | None,
    params: Mapping[str, str] | None = None,
) -> tuple[bool, str]:
    """Revoke a grant at the provider (refresh token first); never raises for the provider."""
    from tokenctl.definitions.model import fill_placeholders
    from tokenctl.oauth.provider import resolve_endpoints, revoke

    try:
        endpoints = endpoints or resolve_endpoints(fill_placeholders(definition, params or {}))
        credentials = client_credentials(ctx, definition)
    except TokenctlError as error:
        return False, error.message
    if not endpoints.revocation_endpoint:
        return False, "the provider has no revocation endpoint"
    if secrets.refresh_token:
        return revoke(credentials, endpoints, secrets.refresh_token, "refresh_token")
    if secrets.access_token:
        return revoke(credentials, endpoints, secrets.access_token, "access_token")
    return False, "no token to revoke"


# -- refresh under an inter-process lock -----------------------------------------------------


@contextlib.contextmanager
def token_lock(ctx: AppContext, token: Token) -> Iterator[None]:
    """Serialise refreshes of one token across processes."""
    with exclusive_lock(ctx.paths.locks_dir / f"token-{token.number}.lock"):
        yield


@dataclass(frozen=True)
class RefreshOutcome:
    """What a refresh did."""

    token: Token
    refreshed: bool  # False: another process had renewed it meanwhile


def refresh_token(ctx: AppContext, token: Token, definition: Definition) -> RefreshOutcome:
    """Refresh without a browser, safely against other processes doing the same.

    Under the token's lock: re-read the record (another process may have renewed it —
    then that result is used), refresh with the refresh token stored now, persist the new
    secrets before anything else, then update the inventory.
    """
    from tokenctl.definitions.model import fill_placeholders
    from tokenctl.oauth.provider import refresh, resolve_endpoints

    definition = fill_placeholders(definition, token.attributes)
    seen = token.secret_set_at
    with token_lock(ctx, token):
        current = ctx.inventory.get(token.number)
        if current.secret_set_at != seen and current.invalid_at is None:
            return RefreshOutcome(current, refreshed=False)
        stored = ctx.secrets.get(current.secret_ref)
        if stored is None or not stored.refresh_token:
            raise NeedsLogin(
                f"token {current.name!r} has no refresh token",
                hint=f"run `{fix_command(current.name, DefinitionKind.OAUTH2)}`",
            )
        credentials = client_credentials(ctx, definition)
        endpoints = resolve_endpoints(definition)
        now = ctx.now()
        try:
            response = refresh(credentials, endpoints, stored.refresh_token)
        except OAuthFailure as failure:
            if failure.error == "invalid_grant":
                mark_refresh_refused(ctx, current, now)
                raise NeedsLogin(
                    f"the provider refused the refresh token of {current.name!r} "
                    "(invalid_grant): it was revoked, expired or already used",
                    hint=f"run `{fix_command(current.name, DefinitionKind.OAUTH2)}`",
                ) from None
            raise
        refreshed = refreshed_state(current, definition, stored, response, now)
        ctx.secrets.set(current.secret_ref, refreshed.secrets)
        saved = save_refreshed(ctx, current, refreshed, now)
    for note in refreshed.notes:
        ctx.io.warn(note)
    return RefreshOutcome(saved, refreshed=True)


@dataclass(frozen=True)
class RefreshedState:
    """What a refresh response changes: the secrets to store and the record's fields."""

    secrets: TokenSecrets
    fields: TokenChanges
    detail: str
    notes: tuple[str, ...] = ()  # for the user, such as an unusable lifetime


def refreshed_state(
    current: Token,
    definition: Definition,
    stored: TokenSecrets,
    response: Mapping[str, Any],
    now: datetime,
) -> RefreshedState:
    """Turn a refresh response into new secrets and inventory fields (no I/O)."""
    from tokenctl.oauth.provider import grant_from_response

    settings = oauth_settings(definition)
    grant = grant_from_response(response, now, settings.scopes, settings)
    if grant.scopes is None:
        grant = replace(grant, scopes=current.granted_scopes)
    new_secrets = secrets_of(grant, stored)
    fields = grant_fields(grant, definition, now, login=False, secrets=new_secrets)
    rotated = grant.refresh_token not in (None, stored.refresh_token)
    detail = "refresh grant" + (", refresh token rotated" if rotated else "")
    return RefreshedState(new_secrets, fields, detail, grant.notes)


def save_refreshed(
    ctx: AppContext, current: Token, refreshed: RefreshedState, now: datetime
) -> Token:
    """Record a refresh whose secrets are already stored (they are persisted first)."""
    return ctx.inventory.update(
        current.number,
        refreshed.fields,
        ctx.actor(),
        now,
        event="renewed",
        detail=refreshed.detail,
    )


def mark_refresh_refused(ctx: AppContext, current: Token, now: datetime) -> None:
    """Record that the provider refused the refresh token: the token is invalid."""
    ctx.inventory.update(
        current.number,
        {"invalid_at": now, "invalid_reason": "refresh refused (invalid_grant)"},
        ctx.actor(),
        now,
        event="renewed",
        outcome="invalid_grant",
        detail="the provider refused the refresh token",
    )


# -- the validity probe ----------------------------------------------------------------------


class ProbeResult(StrEnum):
    """What the provider said about a token (stored as ``probe_result``)."""

    VALID = "valid"
    INVALID = "invalid"
    UNREACHABLE = "unreachable"


@dataclass(frozen=True)
class ProbeOutcome:
    """What the provider said about a token."""

    token: Token
    result: ProbeResult
    detail: str


def probe_token(ctx: AppContext, token: Token, definition: Definition) -> ProbeOutcome:
    """Ask the provider whether the token still works, and record the answer."""
    from tokenctl.definitions.model import fill_placeholders
    from tokenctl.oauth.provider import bearer_get, introspect, resolve_endpoints

    oauth_settings(definition)
    filled = fill_placeholders(definition, token.attributes)
    now = ctx.now()
    result, detail = ProbeResult.UNREACHABLE, ""
    try:
        endpoints = resolve_endpoints(filled)
        stored = ctx.secrets.get(token.secret_ref)
        if stored is None or not stored.access_token:
            result, detail = ProbeResult.INVALID, "no access token is stored"
        else:
            access_token: str | None = stored.access_token
            if token.expires_at is not None and token.expires_at <= now:
                if not stored.refresh_token:
                    raise NeedsLogin("the access token expired and there is no refresh token")
                token = refresh_token(ctx, token, definition).token
                refreshed = ctx.secrets.get(token.secret_ref)
                access_token = refreshed.access_token if refreshed else None
            url = endpoints.probe_url or endpoints.userinfo_endpoint
            if access_token is None:
                result, detail = ProbeResult.INVALID, "no access token is stored"
            elif url:
                status, _ = bearer_get(url, access_token, deadline=endpoints.call_deadline)
                if 200 <= status < 300:
                    result, detail = ProbeResult.VALID, f"{url} answered HTTP {status}"
                elif status in (401, 403):
                    result, detail = ProbeResult.INVALID, f"{url} answered HTTP {status}"
                else:
                    result, detail = ProbeResult.UNREACHABLE, f"{url} answered HTTP {status}"
            elif endpoints.introspection_endpoint:
                active = introspect(client_credentials(ctx, definition), endpoints, access_token)
                result = ProbeResult.VALID if active else ProbeResult.INVALID
                detail = f"introspection: {'active' if active else 'not active'}"
            else:
                raise ConfigError(
                    f"definition {definition.name!r} has no probe URL, userinfo or "
                    "introspection endpoint",
                )
    except NeedsLogin as error:
        result, detail = ProbeResult.INVALID, error.message
    except ProviderUnreachable as error:
        result, detail = ProbeResult.UNREACHABLE, error.message
    now = ctx.now()  # after any refresh above, so the history stays in time order
    changes: TokenChanges = {"probed_at": now, "probe_result": result}
    current = ctx.inventory.get(token.number)
    if result is ProbeResult.INVALID:
        changes.update({"invalid_at": now, "invalid_reason": f"probe: {detail}"})
    elif result is ProbeResult.VALID and not (current.invalid_reason or "").startswith(
        "refresh refused"
    ):
        # A refused refresh token stays dead even while its last access token still works.
        changes.update({"invalid_at": None, "invalid_reason": None})
    if result is ProbeResult.INVALID and current.invalid_at is not None:
        changes.pop("invalid_at")  # keep the first moment it was seen invalid
    updated = ctx.inventory.update(
        token.number, changes, ctx.actor(), now, event="probed", outcome=result, detail=detail
    )
    return ProbeOutcome(updated, result, detail)
