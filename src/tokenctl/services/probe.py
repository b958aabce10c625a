"""The validity probe: ask the provider whether a token still works, and record the answer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from tokenctl.context import AppContext
from tokenctl.definitions.model import Definition
from tokenctl.errors import ConfigError
from tokenctl.models import Token, TokenChanges
from tokenctl.oauth.provider import ProviderUnreachable
from tokenctl.services.access_decision import refresh_due
from tokenctl.services.probe_attributes import (
    attribute_changes,
    follows_token,
    recordable,
    values_from,
)
from tokenctl.services.refresh import REFRESH_REFUSED, NeedsLogin, refresh_token


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


def _invalid_statuses(token_parameter: str | None) -> tuple[int, ...]:
    """The answers that mean "this token does not work".

    A bearer call is refused with 401 or 403 (RFC 6750). A call that names the token in
    a query parameter is a validation of that token, made as the client: there 400 says
    the token is not valid (Twinfield's ``accesstokenvalidation``,
    docs/providers/twinfield.md), while 401 and 403 refuse the client (a wrong or
    rotated client secret) and say nothing of the token.
    """
    return (400,) if token_parameter else (401, 403)


def probe_token(ctx: AppContext, token: Token, definition: Definition) -> ProbeOutcome:
    """Ask the provider whether the token still works, and record the answer.

    An expired access token is refreshed first (the one refresh transaction); the
    provider client, with its endpoints resolved once, serves both calls.
    """
    client = ctx.provider_client(definition, token.attributes)
    now = ctx.now()
    result, detail = ProbeResult.UNREACHABLE, ""
    recorded: dict[str, str] = {}  # probe_attributes read off the answer
    try:
        endpoints = client.endpoints
        stored = ctx.inventory.secrets(token.number)
        if stored is None or not stored.access_token:
            result, detail = ProbeResult.INVALID, "no access token is stored"
        else:
            access_token: str | None = stored.access_token
            # Only once expired (no margin): the probe asks about the token as it stands.
            if refresh_due(token.expires_at, timedelta(0), now):
                if not stored.refresh_token:
                    raise NeedsLogin("the access token expired and there is no refresh token")
                token = refresh_token(ctx, token, definition).token
                refreshed = ctx.inventory.secrets(token.number)
                access_token = refreshed.access_token if refreshed else None
            url = endpoints.probe_url or endpoints.userinfo_endpoint
            if access_token is None:
                result, detail = ProbeResult.INVALID, "no access token is stored"
            elif url:
                if endpoints.probe_url:
                    status, body = client.probe_get(access_token)
                else:
                    status, body = client.bearer_get(url, access_token)
                if 200 <= status < 300:
                    result, detail = ProbeResult.VALID, f"{url} answered HTTP {status}"
                    if follows_token(client.settings):
                        recorded = recordable(values_from(client.settings, body))
                elif status in _invalid_statuses(client.settings.probe_token_parameter):
                    result, detail = ProbeResult.INVALID, f"{url} answered HTTP {status}"
                elif client.settings.probe_token_parameter and status in (401, 403):
                    result, detail = (
                        ProbeResult.UNREACHABLE,
                        f"{url} refused tokenctl as the client (HTTP {status}): check the "
                        f"client id and secret (`tokenctl definitions configure "
                        f"{definition.name} --client-id ID --client-secret-stdin`)",
                    )
                else:
                    result, detail = ProbeResult.UNREACHABLE, f"{url} answered HTTP {status}"
            elif endpoints.introspection_endpoint:
                active = client.introspect(access_token)
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

    def changes_for(current: Token) -> TokenChanges:
        changes: TokenChanges = {"probed_at": now, "probe_result": result}
        if result is ProbeResult.INVALID:
            changes.update({"invalid_at": now, "invalid_reason": f"probe: {detail}"})
        elif result is ProbeResult.VALID and not (current.invalid_reason or "").startswith(
            REFRESH_REFUSED
        ):
            # A refused refresh token stays dead even while its last access token still works.
            changes.update({"invalid_at": None, "invalid_reason": None})
        if result is ProbeResult.INVALID and current.invalid_at is not None:
            changes.pop("invalid_at")  # keep the first moment it was seen invalid
        changes.update(attribute_changes(current, recorded) or {})
        return changes

    updated, _ = ctx.inventory.update_if(
        token.number, changes_for, ctx.actor(), now, event="probed", outcome=result, detail=detail
    )
    return ProbeOutcome(updated, result, detail)
