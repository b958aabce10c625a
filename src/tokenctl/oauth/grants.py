"""What a grant changes: the secret set to store and the record's fields (no I/O).

Shared by the login (a new grant) and the one refresh transaction
(:mod:`tokenctl.services.refresh`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from tokenctl.definitions.model import Definition
from tokenctl.models import Token, TokenChanges, TokenSecrets
from tokenctl.oauth.client import oauth_settings
from tokenctl.oauth.provider import Grant
from tokenctl.timeutil import add_checked


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
        inventory=previous.inventory if previous else None,
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
