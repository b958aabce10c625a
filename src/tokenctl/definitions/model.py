"""Definitions: the templates that say how a kind of token is obtained.

A definition is read from a TOML table. Validation is strict: an unknown or mistyped
field is an error that names the file, the definition and the field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from enum import StrEnum
from typing import Any

from tokenctl.definitions import DefinitionKind
from tokenctl.errors import ConfigError, UsageError
from tokenctl.timeutil import format_duration, parse_duration

NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"
LOGIN_MODES = ("loopback", "paste", "device", "relay")
AUTH_METHODS = ("none", "client_secret_basic", "client_secret_post")


class LoopbackHost(StrEnum):
    """The host name in the loopback redirect URI (``oauth2.redirect_host``).

    The listener itself only ever binds loopback addresses; ``localhost`` is for providers
    that document that name and refuse the IP literal (Xero, Intuit's sandbox).
    """

    IP = "127.0.0.1"
    LOCALHOST = "localhost"


#: How scopes may be joined in the authorization request (``oauth2.scope_separator``):
#: RFC 6749 §3.3 says spaces; Zoho documents commas.
SCOPE_SEPARATORS = (" ", ",")
PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_]*)\}")
#: OAuth settings named as in provider metadata (RFC 8414 / OpenID Connect Discovery).
DISCOVERABLE_ENDPOINTS = (
    "authorization_endpoint",
    "token_endpoint",
    "revocation_endpoint",
    "userinfo_endpoint",
    "introspection_endpoint",
    "device_authorization_endpoint",
    "jwks_uri",
)
#: OAuth settings that may contain {placeholders}, filled per token.
TEMPLATED_FIELDS = ("issuer", *DISCOVERABLE_ENDPOINTS, "probe_url", "tenants_url")
#: Scopes that only shape the login (an ID token, its claims, a refresh token), not what the
#: token may do: never required unless a definition lists them in ``required_scopes``.
#: Providers leave them out of the granted scope (the Microsoft identity platform echoes
#: none of them for a Business Central token), so requiring them made tokens `insufficient`.
LOGIN_SCOPES = frozenset({"openid", "profile", "email", "offline_access"})


class RevocationBody(StrEnum):
    """How a revocation request carries the token (``oauth2.revocation_body``)."""

    FORM = "form"  # RFC 7009: token=...&token_type_hint=..., form-encoded
    JSON = "json"  # {"token": "..."} as application/json (Intuit documents only this)


#: The total time one provider call (discovery, token, userinfo, ...) may take by default.
DEFAULT_CALL_DEADLINE = timedelta(seconds=60)
#: What ``oauth2.call_deadline`` may be set to.
CALL_DEADLINE_RANGE = (timedelta(seconds=1), timedelta(hours=1))


@dataclass(frozen=True)
class DeadRefreshAnswer:
    """A token-endpoint error answer that means "this refresh token is dead".

    ``invalid_grant`` (RFC 6749 section 5.2) always means it; some providers answer a
    used-up or expired refresh token otherwise (Exact Online: ``unauthorized_client``
    "Old refresh token used."). ``description``, when given, must occur in the
    provider's ``error_description`` (case ignored): another answer with the same
    ``error`` code (a wrong client id) stays an ordinary failure.
    """

    error: str
    description: str | None = None

    def matches(self, error: str, description: str | None) -> bool:
        """Whether a provider's ``error`` and ``error_description`` are this answer."""
        if error != self.error:
            return False
        if self.description is None:
            return True
        return self.description.casefold() in (description or "").casefold()


#: The answer every provider gives for a refresh token that is revoked, expired or used.
INVALID_GRANT = DeadRefreshAnswer("invalid_grant")


@dataclass(frozen=True)
class OAuth2Settings:
    """Endpoints and parameters of an OAuth 2.0 / OpenID Connect definition."""

    issuer: str | None = None
    authorization_endpoint: str | None = None
    token_endpoint: str | None = None
    revocation_endpoint: str | None = None
    userinfo_endpoint: str | None = None
    introspection_endpoint: str | None = None
    device_authorization_endpoint: str | None = None
    probe_url: str | None = None
    scopes: tuple[str, ...] = ()
    required_scopes: tuple[str, ...] | None = None
    authorize_params: Mapping[str, str] = field(default_factory=dict)
    fresh_login_params: Mapping[str, str] = field(default_factory=lambda: {"prompt": "login"})
    client_id: str | None = None
    token_endpoint_auth_method: str | None = None
    redirect_port: int | None = None
    redirect_host: LoopbackHost = LoopbackHost.IP
    scope_separator: str = " "
    jwks_uri: str | None = None
    redirect_uri: str | None = None
    login_mode: str = "loopback"
    callback_attributes: Mapping[str, str] = field(default_factory=dict)
    probe_attributes: Mapping[str, str] = field(default_factory=dict)
    #: Send the access token to ``probe_url`` as this query parameter, not as a bearer header.
    probe_token_parameter: str | None = None
    #: Record ``probe_attributes`` again after every refresh and probe, not only at login.
    probe_attributes_always: bool = False
    tenants_url: str | None = None
    tenant_id_field: str = "id"
    tenant_name_field: str | None = None
    max_concurrent_requests: int | None = None
    iss_parameter_supported: bool | None = None  # None: ask discovery when there is an issuer
    call_deadline: timedelta | None = None  # None: DEFAULT_CALL_DEADLINE
    #: Answers besides ``invalid_grant`` that mean the refresh token is dead.
    dead_refresh_answers: tuple[DeadRefreshAnswer, ...] = ()
    revocation_body: RevocationBody = RevocationBody.FORM

    def refresh_token_dead(self, error: str, description: str | None) -> bool:
        """Whether a refused refresh means that only a new login helps.

        ``invalid_grant``, or one of the definition's ``dead_refresh_answers``.
        """
        return any(
            answer.matches(error, description)
            for answer in (INVALID_GRANT, *self.dead_refresh_answers)
        )

    @property
    def effective_call_deadline(self) -> timedelta:
        """How long one call to this provider (request and whole answer) may take."""
        return DEFAULT_CALL_DEADLINE if self.call_deadline is None else self.call_deadline

    @property
    def effective_required_scopes(self) -> tuple[str, ...]:
        """Scopes a grant must carry; by default every requested scope but the login's own.

        The one rule for built-in, TOML and discovered definitions alike: without
        ``required_scopes`` a scope of :data:`LOGIN_SCOPES` is asked for, not required.
        """
        if self.required_scopes is not None:
            return self.required_scopes
        return tuple(scope for scope in self.scopes if scope not in LOGIN_SCOPES)

    def join_scopes(self, scopes: tuple[str, ...]) -> str:
        """``scopes`` as one ``scope`` parameter, joined the way this provider reads them."""
        return self.scope_separator.join(scopes)

    def split_scopes(self, scope: str) -> tuple[str, ...]:
        """A ``scope`` value from the provider as single scopes.

        Split at the definition's separator and at spaces: a provider that takes commas may
        still answer with spaces (Zoho's documented refresh answers do).
        """
        return tuple(scope.replace(self.scope_separator, " ").split())


@dataclass(frozen=True)
class Lifetimes:
    """Token lifetime hints; ``None`` means the provider does not say."""

    access_token: timedelta | None = None
    refresh_token: timedelta | None = None
    refresh_token_idle: timedelta | None = None
    rotates_refresh_token: bool | None = None
    refresh_margin: timedelta | None = None


@dataclass(frozen=True)
class Limits:
    """What the provider allows of token-endpoint calls; ``None``: it sets no such limit.

    Counted per app and account (definition, client id, account) by tokenctl itself, in
    the inventory (docs/definitions.md, ``[definitions.NAME.limits]``).
    """

    #: At most this many token calls (code exchanges and refreshes) in any 24 hours.
    token_calls_per_day: int | None = None
    #: At least this long between two token calls.
    min_token_interval: timedelta | None = None

    @property
    def any(self) -> bool:
        """Whether the definition limits token calls at all."""
        return self.token_calls_per_day is not None or self.min_token_interval is not None


@dataclass(frozen=True)
class Definition:
    """How a kind of token is obtained; its title is the token's "type"."""

    name: str
    title: str
    kind: DefinitionKind
    classification: str = "General"
    description: str | None = None
    identifier_mandatory: bool = False
    pass_code_mandatory: bool = False
    identifier_label: str = "identifier"
    pass_code_label: str = "pass code"  # noqa: S105 - a label, not a secret
    oauth2: OAuth2Settings | None = None
    lifetimes: Lifetimes = field(default_factory=Lifetimes)
    limits: Limits = field(default_factory=Limits)
    setup: str | None = None
    registration_url: str | None = None
    documentation_url: str | None = None
    placeholders: Mapping[str, str] = field(default_factory=dict)
    source: str = "built-in"
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @property
    def required_scopes(self) -> tuple[str, ...]:
        """Scopes a token of this definition must have been granted."""
        return self.oauth2.effective_required_scopes if self.oauth2 else ()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description (the documented ``definition`` object)."""
        oauth: dict[str, Any] | None = None
        if self.oauth2 is not None:
            settings = self.oauth2
            oauth = {
                "issuer": settings.issuer,
                "authorization_endpoint": settings.authorization_endpoint,
                "token_endpoint": settings.token_endpoint,
                "revocation_endpoint": settings.revocation_endpoint,
                "userinfo_endpoint": settings.userinfo_endpoint,
                "introspection_endpoint": settings.introspection_endpoint,
                "device_authorization_endpoint": settings.device_authorization_endpoint,
                "probe_url": settings.probe_url,
                "scopes": list(settings.scopes),
                "required_scopes": list(settings.effective_required_scopes),
                "authorize_params": dict(settings.authorize_params),
                "fresh_login_params": dict(settings.fresh_login_params),
                "client_id": settings.client_id,
                "token_endpoint_auth_method": settings.token_endpoint_auth_method,
                "redirect_port": settings.redirect_port,
                "redirect_host": settings.redirect_host.value,
                "scope_separator": settings.scope_separator,
                "jwks_uri": settings.jwks_uri,
                "redirect_uri": settings.redirect_uri,
                "login_mode": settings.login_mode,
                "callback_attributes": dict(settings.callback_attributes),
                "probe_attributes": dict(settings.probe_attributes),
                "probe_token_parameter": settings.probe_token_parameter,
                "probe_attributes_always": settings.probe_attributes_always,
                "tenants_url": settings.tenants_url,
                "tenant_id_field": settings.tenant_id_field,
                "tenant_name_field": settings.tenant_name_field,
                "max_concurrent_requests": settings.max_concurrent_requests,
                "iss_parameter_supported": settings.iss_parameter_supported,
                "call_deadline": _duration_or_none(settings.call_deadline),
                "dead_refresh_answers": [
                    {"error": answer.error, "description": answer.description}
                    for answer in settings.dead_refresh_answers
                ],
                "revocation_body": settings.revocation_body.value,
            }
        lifetimes = self.lifetimes
        return {
            "name": self.name,
            "title": self.title,
            "classification": self.classification,
            "kind": self.kind.value,
            "description": self.description,
            "identifier_mandatory": self.identifier_mandatory,
            "pass_code_mandatory": self.pass_code_mandatory,
            "identifier_label": self.identifier_label,
            "pass_code_label": self.pass_code_label,
            "oauth2": oauth,
            "lifetimes": {
                "access_token": _duration_or_none(lifetimes.access_token),
                "refresh_token": _duration_or_none(lifetimes.refresh_token),
                "refresh_token_idle": _duration_or_none(lifetimes.refresh_token_idle),
                "rotates_refresh_token": lifetimes.rotates_refresh_token,
                "refresh_margin": _duration_or_none(lifetimes.refresh_margin),
            },
            "limits": {
                "token_calls_per_day": self.limits.token_calls_per_day,
                "min_token_interval": _duration_or_none(self.limits.min_token_interval),
            },
            "setup": self.setup,
            "registration_url": self.registration_url,
            "documentation_url": self.documentation_url,
            "placeholders": dict(self.placeholders),
            "source": self.source,
        }


def _duration_or_none(value: timedelta | None) -> str | None:
    return None if value is None else format_duration(value)


class _Fields:
    """Reads typed fields out of one TOML table and reports errors with full context."""

    def __init__(self, source: str, definition: str, table: Mapping[str, Any], prefix: str = ""):
        self.source = source
        self.definition = definition
        self.table = table
        self.prefix = prefix
        self.seen: set[str] = set()

    def fail(self, key: str, problem: str) -> ConfigError:
        return ConfigError(
            f"{self.source}: definition {self.definition!r}, "
            f"field {self.prefix + key!r}: {problem}",
            hint="fix the field, or see docs/definitions.md for the format",
        )

    def _get(self, key: str) -> Any:
        self.seen.add(key)
        return self.table.get(key)

    def raw(self, key: str) -> Any:
        """The value as TOML gave it (a space is a valid value here), or ``None``."""
        return self._get(key)

    def string(self, key: str, *, required: bool = False) -> str | None:
        value = self._get(key)
        if value is None:
            if required:
                raise self.fail(key, "is required")
            return None
        if not isinstance(value, str) or not value.strip():
            raise self.fail(key, f"must be a non-empty string, got {value!r}")
        return value

    def url(self, key: str) -> str | None:
        value = self.string(key)
        if value is not None and not value.startswith(("https://", "http://")):
            raise self.fail(key, f"must be an http(s) URL, got {value!r}")
        return value

    def boolean(self, key: str, default: bool | None) -> bool | None:
        value = self._get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.fail(key, f"must be true or false, got {value!r}")
        return value

    def integer(self, key: str, low: int, high: int) -> int | None:
        value = self._get(key)
        if value is None:
            return None
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise self.fail(key, f"must be a whole number from {low} to {high}, got {value!r}")
        return value

    def strings(self, key: str) -> tuple[str, ...] | None:
        value = self._get(key)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self.fail(key, f"must be a list of strings, got {value!r}")
        return tuple(value)

    def mapping(self, key: str) -> dict[str, str] | None:
        value = self._get(key)
        if value is None:
            return None
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise self.fail(key, "must be a table of string values")
        return dict(value)

    def duration(self, key: str) -> timedelta | None:
        value = self._get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            raise self.fail(key, f'must be a duration like "30d", got {value!r}')
        try:
            return parse_duration(value)
        except UsageError as error:
            raise self.fail(key, error.message) from None

    def table_of(self, key: str) -> Mapping[str, Any] | None:
        value = self._get(key)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise self.fail(key, "must be a table")
        return value

    def table_of_list(self, key: str) -> list[Mapping[str, Any]]:
        value = self._get(key)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise self.fail(key, "must be a list of tables")
        return value

    def reject_unknown(self) -> None:
        unknown = sorted(set(self.table) - self.seen)
        if unknown:
            raise self.fail(unknown[0], "unknown field")


def parse_definition(name: str, table: Any, source: str) -> Definition:
    """Build a :class:`Definition` from its TOML table, validating every field."""
    import re

    if not re.match(NAME_PATTERN, name):
        raise ConfigError(
            f"{source}: definition {name!r}: invalid name",
            hint="use lower-case letters, digits, '.', '_' and '-' (at most 64 characters)",
        )
    if not isinstance(table, dict):
        raise ConfigError(f"{source}: definition {name!r}: must be a table [definitions.{name}]")
    reader = _Fields(source, name, table)
    title = reader.string("title", required=True)
    kind_text = reader.string("kind", required=True) or ""
    try:
        kind = DefinitionKind(kind_text)
    except ValueError:
        raise reader.fail("kind", f"must be 'static' or 'oauth2', got {kind_text!r}") from None
    oauth_table = reader.table_of("oauth2")
    lifetimes_table = reader.table_of("lifetimes")
    limits_table = reader.table_of("limits")
    definition = Definition(
        name=name,
        title=title or name,
        kind=kind,
        classification=reader.string("classification") or "General",
        description=reader.string("description"),
        identifier_mandatory=bool(reader.boolean("identifier_mandatory", False)),
        pass_code_mandatory=bool(
            reader.boolean("pass_code_mandatory", kind is DefinitionKind.STATIC)
        ),
        identifier_label=reader.string("identifier_label") or "identifier",
        pass_code_label=reader.string("pass_code_label") or "pass code",
        oauth2=_parse_oauth2(source, name, oauth_table) if oauth_table is not None else None,
        lifetimes=_parse_lifetimes(source, name, lifetimes_table or {}),
        limits=_parse_limits(source, name, limits_table or {}),
        setup=reader.string("setup"),
        registration_url=reader.url("registration_url"),
        documentation_url=reader.url("documentation_url"),
        placeholders=reader.mapping("placeholders") or {},
        source=source,
        raw=table,
    )
    reader.reject_unknown()
    for placeholder in definition.placeholders:
        if not PLACEHOLDER.fullmatch("{" + placeholder + "}"):
            raise reader.fail("placeholders", f"invalid placeholder name {placeholder!r}")
    if definition.oauth2 is not None:
        for field_name, value in _templated_values(definition.oauth2):
            for used in PLACEHOLDER.findall(value):
                if used not in definition.placeholders:
                    raise reader.fail(
                        f"oauth2.{field_name}",
                        f"uses {{{used}}}, which is not declared in placeholders",
                    )
    if kind is DefinitionKind.OAUTH2:
        settings = definition.oauth2
        if settings is None:
            raise reader.fail("oauth2", "is required for kind 'oauth2'")
        if settings.token_endpoint is None and settings.issuer is None:
            raise reader.fail("oauth2.token_endpoint", "is required (or give an issuer)")
    elif oauth_table is not None:
        raise reader.fail("oauth2", "only applies to kind 'oauth2'")
    if limits_table is not None and kind is not DefinitionKind.OAUTH2:
        raise reader.fail("limits", "only applies to kind 'oauth2' (it counts token calls)")
    return definition


def _parse_oauth2(source: str, name: str, table: Mapping[str, Any]) -> OAuth2Settings:
    reader = _Fields(source, name, table, prefix="oauth2.")
    auth_method = reader.string("token_endpoint_auth_method")
    if auth_method is not None and auth_method not in AUTH_METHODS:
        raise reader.fail(
            "token_endpoint_auth_method",
            "must be 'none', 'client_secret_basic' or 'client_secret_post'",
        )
    fresh_login = reader.mapping("fresh_login_params")
    login_mode = reader.string("login_mode") or "loopback"
    if login_mode not in LOGIN_MODES:
        raise reader.fail("login_mode", f"must be one of {', '.join(LOGIN_MODES)}")
    redirect_uri = reader.url("redirect_uri")
    revocation_body = reader.string("revocation_body") or RevocationBody.FORM.value
    if revocation_body not in {body.value for body in RevocationBody}:
        raise reader.fail("revocation_body", "must be 'form' or 'json'")
    if login_mode in ("paste", "relay") and redirect_uri is None:
        raise reader.fail("redirect_uri", f"is required for login_mode {login_mode!r}")
    host_text = reader.string("redirect_host") or LoopbackHost.IP.value
    try:
        redirect_host = LoopbackHost(host_text)
    except ValueError:
        raise reader.fail(
            "redirect_host", f"must be '127.0.0.1' or 'localhost', got {host_text!r}"
        ) from None
    separator = reader.raw("scope_separator")
    if separator is None:
        separator = " "
    if separator not in SCOPE_SEPARATORS:
        raise reader.fail("scope_separator", f"must be ' ' or ',', got {separator!r}")
    settings = OAuth2Settings(
        issuer=reader.url("issuer"),
        authorization_endpoint=reader.url("authorization_endpoint"),
        token_endpoint=reader.url("token_endpoint"),
        revocation_endpoint=reader.url("revocation_endpoint"),
        userinfo_endpoint=reader.url("userinfo_endpoint"),
        introspection_endpoint=reader.url("introspection_endpoint"),
        device_authorization_endpoint=reader.url("device_authorization_endpoint"),
        probe_url=reader.url("probe_url"),
        scopes=reader.strings("scopes") or (),
        required_scopes=reader.strings("required_scopes"),
        authorize_params=reader.mapping("authorize_params") or {},
        fresh_login_params={"prompt": "login"} if fresh_login is None else fresh_login,
        client_id=reader.string("client_id"),
        token_endpoint_auth_method=auth_method,
        redirect_port=reader.integer("redirect_port", 1, 65535),
        redirect_host=redirect_host,
        scope_separator=separator,
        jwks_uri=reader.url("jwks_uri"),
        redirect_uri=redirect_uri,
        login_mode=login_mode,
        callback_attributes=_callback_attributes(reader),
        probe_attributes=reader.mapping("probe_attributes") or {},
        probe_token_parameter=reader.string("probe_token_parameter"),
        probe_attributes_always=bool(reader.boolean("probe_attributes_always", False)),
        tenants_url=reader.url("tenants_url"),
        tenant_id_field=reader.string("tenant_id_field") or "id",
        tenant_name_field=reader.string("tenant_name_field"),
        max_concurrent_requests=reader.integer("max_concurrent_requests", 1, 64),
        iss_parameter_supported=reader.boolean("iss_parameter_supported", None),
        call_deadline=reader.duration("call_deadline"),
        dead_refresh_answers=_dead_refresh_answers(reader),
        revocation_body=RevocationBody(revocation_body),
    )
    reader.reject_unknown()
    if settings.probe_token_parameter is not None and settings.probe_url is None:
        raise reader.fail("probe_token_parameter", "needs probe_url (the URL that takes it)")
    if settings.probe_attributes_always and not (settings.probe_url and settings.probe_attributes):
        raise reader.fail(
            "probe_attributes_always", "needs probe_url and probe_attributes (what to record)"
        )
    low, high = CALL_DEADLINE_RANGE
    if settings.call_deadline is not None and not low <= settings.call_deadline <= high:
        raise reader.fail(
            "call_deadline",
            f"must be from {format_duration(low)} to {format_duration(high)}, "
            f"got {table['call_deadline']!r}",
        )
    return settings


def _dead_refresh_answers(reader: _Fields) -> tuple[DeadRefreshAnswer, ...]:
    key = "dead_refresh_answers"
    value = reader.table_of_list(key)
    answers = []
    for entry in value:
        unknown = sorted(set(entry) - {"error", "description"})
        error, description = entry.get("error"), entry.get("description")
        if unknown or not isinstance(error, str) or not error.strip():
            raise reader.fail(
                key,
                'each entry must be { error = "CODE" } with an optional description = "TEXT"'
                + (f"; unknown field {unknown[0]!r}" if unknown else ""),
            )
        if description is not None and (not isinstance(description, str) or not description):
            raise reader.fail(key, f"description must be a non-empty string, got {description!r}")
        answers.append(DeadRefreshAnswer(error, description))
    return tuple(answers)


def _parse_limits(source: str, name: str, table: Mapping[str, Any]) -> Limits:
    reader = _Fields(source, name, table, prefix="limits.")
    limits = Limits(
        token_calls_per_day=reader.integer("token_calls_per_day", 1, 1_000_000),
        min_token_interval=reader.duration("min_token_interval"),
    )
    reader.reject_unknown()
    if limits.min_token_interval is not None and not (
        timedelta(0) < limits.min_token_interval <= timedelta(days=1)
    ):
        raise reader.fail("min_token_interval", "must be more than 0s and at most 1d")
    return limits


def _parse_lifetimes(source: str, name: str, table: Mapping[str, Any]) -> Lifetimes:
    reader = _Fields(source, name, table, prefix="lifetimes.")
    lifetimes = Lifetimes(
        access_token=reader.duration("access_token"),
        refresh_token=reader.duration("refresh_token"),
        refresh_token_idle=reader.duration("refresh_token_idle"),
        rotates_refresh_token=reader.boolean("rotates_refresh_token", None),
        refresh_margin=reader.duration("refresh_margin"),
    )
    reader.reject_unknown()
    return lifetimes


def _templated_values(settings: OAuth2Settings) -> list[tuple[str, str]]:
    values = [(name, getattr(settings, name)) for name in TEMPLATED_FIELDS]
    values += [(f"authorize_params.{k}", v) for k, v in settings.authorize_params.items()]
    return [(name, value) for name, value in values if isinstance(value, str)]


def fill_placeholders(definition: Definition, values: Mapping[str, str]) -> Definition:
    """The definition with its ``{placeholders}`` filled from ``values`` (a token's).

    A missing value is a usage error that names the flag which supplies it.
    """
    if definition.oauth2 is None or not definition.placeholders:
        return definition
    missing = sorted(name for name in definition.placeholders if not values.get(name))
    used = {
        p for _, value in _templated_values(definition.oauth2) for p in PLACEHOLDER.findall(value)
    }
    missing = [name for name in missing if name in used]
    if missing:
        name = missing[0]
        raise UsageError(
            f"definition {definition.name!r} needs a value for {{{name}}}: "
            f"{definition.placeholders[name]}",
            hint=f"pass --param {name}=VALUE",
        )

    def fill(text: str) -> str:
        return PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), text)

    settings = definition.oauth2
    changes: dict[str, Any] = {
        name: fill(getattr(settings, name))
        for name in TEMPLATED_FIELDS
        if isinstance(getattr(settings, name), str)
    }
    changes["authorize_params"] = {k: fill(v) for k, v in settings.authorize_params.items()}
    return replace(definition, oauth2=replace(settings, **changes))


#: Callback parameters that are never recorded as attributes: the code is a secret, and
#: the state is the login's one-time check (RFC 6749 §4.1.2); attributes reach JSON output.
RESERVED_CALLBACK_PARAMETERS = frozenset({"code", "state"})


def _callback_attributes(reader: _Fields) -> dict[str, str]:
    """``oauth2.callback_attributes``: callback parameter -> attribute, never a reserved one."""
    mapping = reader.mapping("callback_attributes") or {}
    reserved = sorted(RESERVED_CALLBACK_PARAMETERS & set(mapping))
    if reserved:
        raise reader.fail(
            "callback_attributes",
            f"{reserved[0]!r} is the login's own callback parameter and is never recorded",
        )
    return dict(mapping)
