"""The records tokenctl manages: tokens, their history, and computed status."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TypedDict


class LifecycleState(StrEnum):
    """Whether a token is in use: only effective tokens are used, renewed and checked."""

    EFFECTIVE = "effective"
    NOT_EFFECTIVE = "not_effective"


class Status(StrEnum):
    """Computed status of a token; never stored."""

    VALID = "valid"
    EXPIRING = "expiring"
    EXPIRED = "expired"
    INVALID = "invalid"
    INSUFFICIENT = "insufficient"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Actor:
    """Who made a change: the OS user and the unit (host name or ``unit`` setting)."""

    user: str
    unit: str


@dataclass(frozen=True)
class HistoryEvent:
    """One line of a token's append-only history."""

    event_id: int
    token_number: int
    token_name: str
    at: datetime
    event: str
    user: str
    unit: str
    outcome: str
    detail: str | None = None


@dataclass(frozen=True)
class Token:
    """A token record as the inventory keeps it. Holds no secret, only a reference to one."""

    number: int
    name: str
    authentication_code: str
    definition: str
    secret_ref: str
    description: str | None = None
    identifier: str | None = None
    account: str | None = None
    state: LifecycleState = LifecycleState.EFFECTIVE
    expires_at: datetime | None = None
    refresh_expires_at: datetime | None = None
    granted_scopes: tuple[str, ...] | None = None
    secret_set_at: datetime | None = None
    invalid_at: datetime | None = None
    invalid_reason: str | None = None
    attributes: dict[str, str] = field(default_factory=dict)
    created_at: datetime | None = None
    created_by: str | None = None
    created_unit: str | None = None
    updated_at: datetime | None = None
    updated_by: str | None = None
    updated_unit: str | None = None
    has_refresh_token: bool = False
    refreshed_at: datetime | None = None
    probed_at: datetime | None = None
    probe_result: str | None = None

    @property
    def is_effective(self) -> bool:
        """True when the life-cycle state lets the token be used."""
        return self.state is LifecycleState.EFFECTIVE


#: The fields of a :class:`Token` that ``Inventory.update`` may change, with their types.
#: (The functional form evaluates the types once, at import: the class form would compile
#: each annotation of this module, which are strings, on every start of tokenctl.)
TokenChanges = TypedDict(  # noqa: UP013 - see above
    "TokenChanges",
    {
        "name": str,
        "description": str | None,
        "identifier": str | None,
        "account": str | None,
        "state": LifecycleState,
        "expires_at": datetime | None,
        "refresh_expires_at": datetime | None,
        "granted_scopes": tuple[str, ...] | None,
        "secret_set_at": datetime | None,
        "invalid_at": datetime | None,
        "invalid_reason": str | None,
        "has_refresh_token": bool,
        "refreshed_at": datetime | None,
        "probed_at": datetime | None,
        "probe_result": str | None,
        "attributes": dict[str, str],
        "definition": str,
    },
    total=False,
)


def connection_expires_at(token: Token, refresh_idle: timedelta | None = None) -> datetime | None:
    """When the connection dies.

    That is the access token's expiry; for a token that can be refreshed, the refresh
    token's own expiry or its inactivity limit, whichever comes first.
    """
    if not token.has_refresh_token:
        return token.expires_at
    candidates = [token.refresh_expires_at] if token.refresh_expires_at else []
    if refresh_idle is not None and token.refreshed_at is not None:
        candidates.append(token.refreshed_at + refresh_idle)
    return min(candidates) if candidates else None


def compute_status(
    token: Token,
    now: datetime,
    expiring_window: timedelta,
    required_scopes: tuple[str, ...] = (),
    refresh_idle: timedelta | None = None,
) -> Status:
    """Derive the status: invalid, then expired, then insufficient, then the expiry window."""
    if token.invalid_at is not None:
        return Status.INVALID
    expiry = connection_expires_at(token, refresh_idle)
    if expiry is not None and expiry <= now:
        return Status.EXPIRED
    if token.granted_scopes is not None and not set(required_scopes) <= set(token.granted_scopes):
        return Status.INSUFFICIENT
    if expiry is None:
        # A refreshable token with no known end keeps renewing itself.
        return Status.VALID if token.has_refresh_token else Status.UNKNOWN
    if expiry - now <= expiring_window:
        return Status.EXPIRING
    return Status.VALID


@dataclass(frozen=True, repr=False)
class TokenSecrets:
    """The secret parts of a token. Lives only in the OS keyring; its repr masks every value."""

    pass_code: str | None = None
    access_token: str | None = None
    refresh_token: str | None = None
    id_token: str | None = None
    token_type: str | None = None
    client_secret: str | None = None

    def __repr__(self) -> str:
        present = [item.name for item in fields(self) if getattr(self, item.name)]
        return f"TokenSecrets(<masked: {', '.join(present) or 'empty'}>)"

    def to_json(self) -> str:
        """Serialise for the keyring entry (only non-empty parts)."""
        data = {item.name: getattr(self, item.name) for item in fields(self)}
        return json.dumps({key: value for key, value in data.items() if value is not None})

    @classmethod
    def from_json(cls, text: str) -> TokenSecrets:
        """Read back what :meth:`to_json` wrote; unknown keys are ignored."""
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("a keyring entry of tokenctl holds a JSON object")
        known = {item.name for item in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})

    @property
    def is_empty(self) -> bool:
        """True when no secret part is present."""
        return not any(getattr(self, item.name) for item in fields(self))
