"""Token records, history events and secrets as the team store keeps them.

A record holds the fields of :class:`~tokenctl.models.Token` but its number (the key it
is stored under) and ``legacy_secret_ref`` (the team store never had per-token keyring
entries); a field that is ``None``, ``False`` or empty is left out. Times are ISO 8601
UTC with seconds, as the local store writes them.

Records and events are stored as JSON *text*, one string each, inside the KV object of
their page or history: OpenBao refuses a request body with more than 1,000 strings
(keys and values, its listener's ``max_request_json_strings``), which a page of 100
records as objects (~25 strings each) would exceed; as text it is 2 strings a record.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import fields
from datetime import datetime
from typing import Any

from tokenctl.models import Actor, HistoryEvent, LifecycleState, Token, TokenSecrets
from tokenctl.timeutil import from_iso, to_iso

#: The parts of :class:`TokenSecrets` the team store keeps for a token (the local store's
#: sealed columns, and the token type).
SECRET_FIELDS = ("access_token", "refresh_token", "id_token", "pass_code", "token_type")

_TIMES = (
    "expires_at",
    "refresh_expires_at",
    "secret_set_at",
    "invalid_at",
    "created_at",
    "updated_at",
    "refreshed_at",
    "probed_at",
)
_FLAGS = ("has_refresh_token", "has_id_token")
_TEXTS = (
    "name",
    "authentication_code",
    "definition",
    "description",
    "identifier",
    "account",
    "invalid_reason",
    "created_by",
    "created_unit",
    "updated_by",
    "updated_unit",
    "probe_result",
    "created_identity",
    "updated_identity",
)
_KEPT = frozenset((*_TIMES, *_FLAGS, *_TEXTS, "state", "granted_scopes", "attributes"))
if _KEPT | {"number", "legacy_secret_ref"} != {item.name for item in fields(Token)}:
    raise RuntimeError("a field of Token is not kept by the team store")  # pragma: no cover


class MalformedRecordError(ValueError):
    """A stored value is not what this tokenctl writes (edited by hand, or damaged)."""


def record_data(token: Token) -> dict[str, Any]:
    """The JSON object stored for ``token`` (its number is the key it is stored under)."""
    data: dict[str, Any] = {
        "name": token.name,
        "authentication_code": token.authentication_code,
        "definition": token.definition,
        "state": LifecycleState(token.state).value,
    }
    for name in _TEXTS[3:]:
        value = getattr(token, name)
        if value is not None:
            data[name] = value
    for name in _TIMES:
        value = getattr(token, name)
        if value is not None:
            data[name] = to_iso(value)
    for name in _FLAGS:
        if getattr(token, name):
            data[name] = True
    if token.granted_scopes is not None:
        data["granted_scopes"] = list(token.granted_scopes)
    if token.attributes:
        data["attributes"] = dict(token.attributes)
    return data


def record_text(token: Token) -> str:
    """:func:`record_data` as the JSON text a page holds."""
    return json.dumps(record_data(token), separators=(",", ":"), ensure_ascii=False)


def token_from_text(number: int, text: Any) -> Token:
    """The token a page holds as ``text``; :class:`MalformedRecordError` if it is not one."""
    try:
        data = json.loads(text)
    except (TypeError, ValueError, RecursionError) as error:
        raise MalformedRecordError(f"not a token record ({type(error).__name__})") from None
    return token_from(number, data)


def token_from(number: int, data: Any) -> Token:
    """The token stored as ``data`` under ``number``; :class:`MalformedRecordError` if not one.

    Hot: ``list`` decodes every token, so the fields are named one by one.
    """
    at = from_iso  # None stays None
    try:
        get = data.get
        name, code, definition = data["name"], data["authentication_code"], data["definition"]
        if type(name) is not str or type(code) is not str or type(definition) is not str:
            raise MalformedRecordError(
                "not a token record (a name, code or definition is not text)"
            )
        scopes = get("granted_scopes")
        attributes = get("attributes")
        return Token(
            number=number,
            name=name,
            authentication_code=code,
            definition=definition,
            description=get("description"),
            identifier=get("identifier"),
            account=get("account"),
            state=LifecycleState(data["state"]),
            expires_at=at(get("expires_at")),
            refresh_expires_at=at(get("refresh_expires_at")),
            granted_scopes=None if scopes is None else tuple(scopes),
            secret_set_at=at(get("secret_set_at")),
            invalid_at=at(get("invalid_at")),
            invalid_reason=get("invalid_reason"),
            attributes={} if attributes is None else dict(attributes),
            created_at=at(get("created_at")),
            created_by=get("created_by"),
            created_unit=get("created_unit"),
            updated_at=at(get("updated_at")),
            updated_by=get("updated_by"),
            updated_unit=get("updated_unit"),
            has_refresh_token=bool(get("has_refresh_token")),
            refreshed_at=at(get("refreshed_at")),
            probed_at=at(get("probed_at")),
            probe_result=get("probe_result"),
            has_id_token=bool(get("has_id_token")),
            created_identity=get("created_identity"),
            updated_identity=get("updated_identity"),
        )
    except MalformedRecordError:
        raise
    except (AttributeError, KeyError, TypeError, ValueError) as error:
        problem = f"{type(error).__name__}: {error}"
        raise MalformedRecordError(f"not a token record ({problem})") from None


def event_data(
    event_id: int,
    name: str,
    actor: Actor,
    now: datetime,
    event: str,
    outcome: str,
    detail: str | None,
) -> dict[str, Any]:
    """One history event as stored in a token's history key."""
    data: dict[str, Any] = {
        "id": event_id,
        "name": name,
        "at": to_iso(now),
        "event": event,
        "user": actor.user,
        "unit": actor.unit,
        "outcome": outcome,
    }
    if detail is not None:
        data["detail"] = detail
    if actor.identity is not None:
        data["identity"] = actor.identity
    return data


def event_text(
    event_id: int,
    name: str,
    actor: Actor,
    now: datetime,
    event: str,
    outcome: str,
    detail: str | None,
) -> str:
    """:func:`event_data` as the JSON text a history holds."""
    data = event_data(event_id, name, actor, now, event, outcome, detail)
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def event_from(number: int, text: Any) -> HistoryEvent:
    """The history event stored as ``text``; :class:`MalformedRecordError` if it is not one."""
    try:
        data = json.loads(text)
        return HistoryEvent(
            event_id=int(data["id"]),
            token_number=number,
            token_name=data["name"],
            at=from_iso(data["at"]) or datetime.min,
            event=data["event"],
            user=data["user"],
            unit=data["unit"],
            outcome=data["outcome"],
            detail=data.get("detail"),
            identity=data.get("identity"),
        )
    except (AttributeError, KeyError, TypeError, ValueError, RecursionError) as error:
        problem = f"{type(error).__name__}: {error}"
        raise MalformedRecordError(f"not a history event ({problem})") from None


def id_of_event(text: Any) -> int:
    """The id of the history event stored as ``text``."""
    try:
        value = json.loads(text)["id"]
    except (KeyError, TypeError, ValueError, RecursionError):
        value = None
    if type(value) is not int:
        raise MalformedRecordError("not a history event (no id)")
    return value


def secrets_data(secrets: TokenSecrets) -> dict[str, str]:
    """What is stored for a token's secrets: the parts it has (as the local store seals)."""
    data = {name: getattr(secrets, name) for name in SECRET_FIELDS[:4] if getattr(secrets, name)}
    if secrets.token_type is not None:
        data["token_type"] = secrets.token_type
    return data


def secrets_from(data: Mapping[str, Any]) -> TokenSecrets | None:
    """The secrets stored as ``data``; ``None`` for an empty object (a write undone)."""
    values = {name: data[name] for name in SECRET_FIELDS if isinstance(data.get(name), str)}
    return TokenSecrets(**values) if data else None
