"""Whether ``token`` and ``exec`` may hand out the stored value: one pure decision.

Both ways of answering ``tokenctl token REF`` take it: the quick path
(:mod:`tokenctl.services.quick_token`, from a few inventory columns) and the full path
(:func:`tokenctl.services.access.current_access_token`, from the token record). Cheap
to import: the quick path must not load the token model or the definitions.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from tokenctl.definitions import DefinitionKind

#: Refresh this long before the access token expires, so it outlives the request; a
#: definition's ``lifetimes.refresh_margin`` replaces it.
REFRESH_MARGIN = timedelta(seconds=60)

#: The part of the keyring entry (a :class:`~tokenctl.models.TokenSecrets` field) that
#: each kind of token hands out.
SERVED_PART = {DefinitionKind.OAUTH2: "access_token", DefinitionKind.STATIC: "pass_code"}


class AccessDecision(StrEnum):
    """What to do about a request for a token's current value."""

    SERVE = "serve"  # hand out the stored value, if the keyring holds it
    REFRESH = "refresh"  # refresh the OAuth token first, then hand out the new one
    NOT_EFFECTIVE = "not_effective"  # fail: the token is not in use
    UNKNOWN_DEFINITION = "unknown_definition"  # fail: its definition is not known
    NO_SECRET = "no_secret"  # noqa: S105 - fail: no secret was ever stored
    INVALID = "invalid"  # fail: the provider refused the OAuth token
    EXPIRED = "expired"  # fail: the static token's pass code has expired


def refresh_margin(configured: timedelta | None) -> timedelta:
    """How long before expiry an access token is refreshed: the definition's margin, or 60 s.

    A configured ``0s`` means exactly that: refresh only once expired.
    """
    return REFRESH_MARGIN if configured is None else configured


def refresh_due(
    expires_at: datetime | None,
    margin: timedelta | None,
    now: datetime,
    *,
    unknown_expiry_due: bool = False,
) -> bool:
    """True when an access token expiring at ``expires_at`` is due for a refresh at ``now``.

    Due once at most ``margin`` remains; a ``margin`` of ``None`` sets no limit (always
    due), ``timedelta(0)`` means only once expired. An unknown expiry is due only when
    ``unknown_expiry_due`` says so (``renew --all`` renews such a token; ``token`` serves it).
    """
    if expires_at is None:
        return unknown_expiry_due
    return margin is None or expires_at - now <= margin


def decide_access(
    *,
    effective: bool,
    secret_set: bool,
    invalid: bool,
    expires_at: datetime | None,
    kind: DefinitionKind | None,
    margin: timedelta | None,
    now: datetime,
) -> AccessDecision:
    """Serve, refresh or fail, from the token's facts and its definition's kind and margin.

    ``kind`` is ``None`` when the definition is unknown; ``margin`` is the definition's
    ``lifetimes.refresh_margin``. The failures are checked in the order their errors are
    reported: not effective, unknown definition, no secret, then invalid (OAuth only: a
    static token has no provider that could refuse it). A static token that expired is
    reported only after its keyring entry was found (see ``current_access_token``).
    """
    if not effective:
        return AccessDecision.NOT_EFFECTIVE
    if kind is None:
        return AccessDecision.UNKNOWN_DEFINITION
    if not secret_set:
        return AccessDecision.NO_SECRET
    if kind is DefinitionKind.OAUTH2:
        if invalid:
            return AccessDecision.INVALID
        # Some providers limit token calls (Exact Online: refresh only in the last ~30 s).
        if refresh_due(expires_at, refresh_margin(margin), now):
            return AccessDecision.REFRESH
        return AccessDecision.SERVE
    if expires_at is not None and expires_at <= now:
        return AccessDecision.EXPIRED
    return AccessDecision.SERVE
