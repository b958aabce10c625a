"""The records tokenctl manages: tokens, their history, and computed status."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TypedDict

from tokenctl.timeutil import add_checked

#: The scope that asks for a refresh token, and the one that asks for an id token.
OFFLINE_ACCESS_SCOPE = "offline_access"
OPENID_SCOPE = "openid"


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
class TokenCall:
    """One token-endpoint call counted against a definition's limits.

    ``token`` is the number of the token it was made for; ``None`` for the login that
    made a token not yet numbered.
    """

    at: datetime
    token: int | None = None


@dataclass(frozen=True)
class NoticeMark:
    """The last notice sent about token ``number`` on one channel to one webhook.

    ``key`` is ``<receiver>/<channel>``: the receiver is a digest of the webhook's URL
    (never the URL, which may hold a credential), the channel the command that sends it
    (``check``, ``renew``). ``state`` says what the notice was about (``expiring``,
    ``failing:expired``, ...); a token with nothing left to report has no mark.
    """

    number: int
    key: str
    state: str
    at: datetime


@dataclass(frozen=True)
class Actor:
    """Who made a change: the OS user, the unit and the store identity.

    The unit is the host name or the ``unit`` setting; the identity is who the store
    knows the change's process as (the team store's entity or role; ``None`` on the
    local store).
    """

    user: str
    unit: str
    identity: str | None = None


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
    #: The store identity of the change (:attr:`Actor.identity`); ``None`` on the local store.
    identity: str | None = None

    @property
    def actor(self) -> Actor:
        """Who made the change, as it was recorded."""
        return Actor(self.user, self.unit, self.identity)


@dataclass(frozen=True)
class Token:
    """A token record as the inventory keeps it. Holds no secret: those are sealed apart.

    ``legacy_secret_ref`` names the per-token keyring entry an older tokenctl kept the
    secrets in, until they are moved into the inventory; ``None`` afterwards.
    """

    number: int
    name: str
    authentication_code: str
    definition: str
    legacy_secret_ref: str | None = None
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
    has_id_token: bool = False
    #: The store identities that created and last changed the record (:attr:`Actor.identity`):
    #: kept by the team store only (:data:`TEAM_STORE_ONLY`).
    created_identity: str | None = None
    updated_identity: str | None = None

    @property
    def is_effective(self) -> bool:
        """True when the life-cycle state lets the token be used."""
        return self.state is LifecycleState.EFFECTIVE

    def missing_scopes(self, required: Iterable[str]) -> list[str]:
        """Required scopes the token's grant does not evidence (see :func:`missing_scopes`)."""
        return missing_scopes(
            required,
            self.granted_scopes,
            has_refresh_token=self.has_refresh_token,
            has_id_token=self.has_id_token,
        )


#: Fields of :class:`Token` only the team store keeps (the local store has no identities).
TEAM_STORE_ONLY = frozenset({"created_identity", "updated_identity"})


def evidenced_scopes(
    granted: Iterable[str] | None, *, has_refresh_token: bool, has_id_token: bool
) -> frozenset[str] | None:
    """The scopes a grant proves it has; ``None`` when the provider never said.

    The scopes the provider listed, plus ``offline_access`` when the grant holds a
    refresh token and ``openid`` when it came with an id token: some providers (the
    Microsoft identity platform) leave those out of the granted ``scope``, yet the
    tokens themselves are the proof.
    """
    if granted is None:
        return None
    evidenced = set(granted)
    if has_refresh_token:
        evidenced.add(OFFLINE_ACCESS_SCOPE)
    if has_id_token:
        evidenced.add(OPENID_SCOPE)
    return frozenset(evidenced)


def missing_scopes(
    required: Iterable[str],
    granted: Iterable[str] | None,
    *,
    has_refresh_token: bool,
    has_id_token: bool,
) -> list[str]:
    """Required scopes a grant does not evidence, sorted; none when its scopes are unknown.

    The one test of scope sufficiency: status, ``check``, ``show`` and the login's warning.
    """
    evidenced = evidenced_scopes(
        granted, has_refresh_token=has_refresh_token, has_id_token=has_id_token
    )
    if evidenced is None:
        return []
    return sorted(set(required) - evidenced)


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
        "has_id_token": bool,
        "refreshed_at": datetime | None,
        "probed_at": datetime | None,
        "probe_result": str | None,
        "attributes": dict[str, str],
        "definition": str,
    },
    total=False,
)


def refresh_idle_end(token: Token, refresh_idle: timedelta | None) -> datetime | None:
    """When the refresh token dies unused: its inactivity limit after the last refresh.

    ``None`` without a limit or a refresh; a limit that ends past the last time tokenctl
    stores is no limit.
    """
    if refresh_idle is None or token.refreshed_at is None:
        return None
    return add_checked(token.refreshed_at, refresh_idle)


def connection_expires_at(token: Token, refresh_idle: timedelta | None = None) -> datetime | None:
    """When the connection dies.

    That is the access token's expiry; for a token that can be refreshed, the refresh
    token's own expiry or its inactivity limit, whichever comes first.
    """
    if not token.has_refresh_token:
        return token.expires_at
    candidates = [token.refresh_expires_at] if token.refresh_expires_at else []
    idle_end = refresh_idle_end(token, refresh_idle)
    if idle_end is not None:
        candidates.append(idle_end)
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
    # Hot in `list`; most definitions require no scope, which nothing can lack.
    if required_scopes and token.missing_scopes(required_scopes):
        return Status.INSUFFICIENT
    if expiry is None:
        # A refreshable token with no known end keeps renewing itself.
        return Status.VALID if token.has_refresh_token else Status.UNKNOWN
    if expiry - now <= expiring_window:
        return Status.EXPIRING
    return Status.VALID


#: Fields of :class:`TokenSecrets` that are facts about a legacy keyring entry, not
#: secrets: they let ``doctor`` revoke the grant of an entry whose record is gone (an
#: ``add`` of tokenctl 0.x killed between writing the keyring and the inventory, an
#: inventory restored from an older backup), and tell this home's entries from another's.
ENTRY_FACTS = frozenset({"definition", "attributes", "inventory"})


@dataclass(frozen=True, repr=False)
class TokenSecrets:
    """The secret parts of a token; its repr masks every value.

    Sealed in the inventory under its data key (:mod:`tokenctl.secrets.sealing`). The
    same shape is read from the per-token keyring entries of tokenctl 0.x, where
    ``definition`` and ``attributes`` (the token's definition name and its non-secret
    attributes) said whose grant it is and ``inventory`` (the inventory file it was
    written for) which tokenctl home it belongs to. See ``ENTRY_FACTS``.
    """

    pass_code: str | None = None
    access_token: str | None = None
    refresh_token: str | None = None
    id_token: str | None = None
    token_type: str | None = None
    client_secret: str | None = None
    definition: str | None = None
    attributes: dict[str, str] | None = None
    inventory: str | None = None

    def __repr__(self) -> str:
        present = [
            item.name
            for item in fields(self)
            if getattr(self, item.name) and item.name not in ENTRY_FACTS
        ]
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
        values = {key: value for key, value in data.items() if key in known}
        attributes = values.get("attributes")
        if attributes is not None and not (
            isinstance(attributes, dict) and all(isinstance(v, str) for v in attributes.values())
        ):
            del values["attributes"]  # only a fact, and not one tokenctl wrote: leave it out
        for fact in ("definition", "inventory"):
            if not isinstance(values.get(fact, ""), str):
                del values[fact]
        return cls(**values)
