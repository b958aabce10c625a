"""Talking to an authorization server through authlib on httpx2.

Every token request (code exchange, refresh, device code, revocation, introspection)
goes through authlib's ``OAuth2Client``; plain GETs (discovery, JWKS, userinfo, probe)
use the same client's HTTP session. Each call ends by the definition's total deadline
(:mod:`tokenctl.oauth.http`).
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeAlias

from tokenctl.definitions.model import (
    DEFAULT_CALL_DEADLINE,
    Definition,
    OAuth2Settings,
    RevocationBody,
)
from tokenctl.errors import AuthorizationError, ConfigError, TokenctlError
from tokenctl.timeutil import add_checked

if TYPE_CHECKING:
    import httpx2

    #: An HTTP transport to put under the deadline layer (tests: ``httpx2.MockTransport``).
    Transport: TypeAlias = httpx2.BaseTransport | httpx2.AsyncBaseTransport

ID_TOKEN_LEEWAY = 120
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


class ProviderUnreachable(TokenctlError):  # noqa: N818 - reads as a state
    """The provider could not be reached or answered with a server error."""


class OAuthFailure(AuthorizationError):  # noqa: N818 - an OAuth error response
    """An OAuth error response (``invalid_grant``, ``access_denied``, ...)."""

    def __init__(self, error: str, description: str | None, *, hint: str | None = None) -> None:
        text = f"the provider answered {error}" + (f": {description}" if description else "")
        AuthorizationError.__init__(self, text, hint=hint)
        self.error = error
        self.description = description


@dataclass(frozen=True)
class Endpoints:
    """The endpoints in effect for one login: the definition's, completed by discovery.

    ``call_deadline`` (seconds) bounds each call to any of them, answer included.
    """

    issuer: str | None
    authorization_endpoint: str | None
    token_endpoint: str
    revocation_endpoint: str | None = None
    userinfo_endpoint: str | None = None
    introspection_endpoint: str | None = None
    device_authorization_endpoint: str | None = None
    jwks_uri: str | None = None
    probe_url: str | None = None
    iss_parameter_supported: bool = False
    id_token_algorithms: tuple[str, ...] = ("RS256",)
    call_deadline: float = DEFAULT_CALL_DEADLINE.total_seconds()
    revocation_body: RevocationBody = RevocationBody.FORM


@dataclass(frozen=True)
class ClientCredentials:
    """The client registration used for a definition. Its repr masks the secret."""

    client_id: str
    client_secret: str | None = field(default=None, repr=False)
    auth_method: str = "none"


@dataclass(frozen=True)
class Grant:
    """A token response, normalised. Secret values never appear in its repr."""

    access_token: str = field(repr=False)
    token_type: str
    refresh_token: str | None = field(default=None, repr=False)
    id_token: str | None = field(default=None, repr=False)
    expires_at: datetime | None = None
    refresh_expires_at: datetime | None = None
    scopes: tuple[str, ...] | None = None
    #: What the user should hear about the response, such as an unusable lifetime.
    notes: tuple[str, ...] = ()


def _client(
    credentials: ClientCredentials | None,
    *,
    deadline: float,
    transport: Transport | None = None,
    **kwargs: Any,
) -> Any:
    """An authlib client whose every request ends within ``deadline`` seconds.

    ``transport`` is the HTTP transport under the deadline layer (``None``: the network).
    """
    from authlib.integrations.httpx_client import OAuth2Client

    from tokenctl.oauth.http import client_options

    if credentials is None:
        return OAuth2Client(**client_options(deadline, transport), **kwargs)
    return OAuth2Client(
        **credential_options(credentials),
        code_challenge_method="S256",
        **client_options(deadline, transport),
        **kwargs,
    )


def credential_options(credentials: ClientCredentials) -> dict[str, Any]:
    """Keyword arguments that make an authlib client authenticate as ``credentials``."""
    return {
        "client_id": credentials.client_id,
        "client_secret": credentials.client_secret,
        "token_endpoint_auth_method": credentials.auth_method,
        "revocation_endpoint_auth_method": credentials.auth_method,
    }


def unreachable(url: str, error: Exception) -> ProviderUnreachable:
    """The error for a provider call that failed below HTTP (network, deadline)."""
    from tokenctl.oauth.http import CallDeadlineExceeded

    if isinstance(error, CallDeadlineExceeded):
        return ProviderUnreachable(
            f"{url} did not answer within the call deadline of {error.seconds:g} s",
            hint="try again later; for a provider that is this slow, raise oauth2.call_deadline "
            "in its definition (see docs/definitions.md)",
        )
    return ProviderUnreachable(
        f"could not reach {url}: {type(error).__name__}",
        hint="check the network and the definition's endpoints, then try again",
    )


def _get_json(url: str, deadline: float, transport: Transport | None = None) -> Mapping[str, Any]:
    import httpx2

    with _client(None, deadline=deadline, transport=transport) as client:
        try:
            response = client.request(
                "GET", url, headers={"Accept": "application/json"}, withhold_token=True
            )
        except httpx2.HTTPError as error:
            raise unreachable(url, error) from None
    if response.status_code != 200:
        raise ProviderUnreachable(f"{url} answered HTTP {response.status_code}")
    try:
        data = response.json()
    except ValueError:
        raise ProviderUnreachable(f"{url} did not answer with JSON") from None
    if not isinstance(data, dict):
        raise ProviderUnreachable(f"{url} did not answer with a JSON object")
    return data


def discover(
    issuer: str,
    deadline: float = DEFAULT_CALL_DEADLINE.total_seconds(),
    transport: Transport | None = None,
) -> Mapping[str, Any]:
    """Fetch OpenID Connect (or RFC 8414) metadata for ``issuer`` and check its issuer.

    ``deadline`` (seconds) bounds each of the (at most two) requests.
    """
    base = issuer.rstrip("/")
    last_error: TokenctlError | None = None
    for suffix in ("/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"):
        try:
            metadata = _get_json(base + suffix, deadline, transport)
        except ProviderUnreachable as error:
            last_error = error
            continue
        if metadata.get("issuer", "").rstrip("/") != base:
            raise AuthorizationError(
                f"the discovery document at {base + suffix} names issuer "
                f"{metadata.get('issuer')!r}, not {issuer!r}",
                hint="use the exact issuer URL the provider publishes",
            )
        return metadata
    assert last_error is not None
    raise last_error


def resolve_endpoints(definition: Definition, transport: Transport | None = None) -> Endpoints:
    """The definition's endpoints, completed from discovery when it names an issuer."""
    settings = definition.oauth2
    if settings is None:
        raise ConfigError(f"definition {definition.name!r} is not an OAuth definition")
    deadline = settings.effective_call_deadline.total_seconds()
    metadata: Mapping[str, Any] = {}
    if settings.issuer and not (settings.token_endpoint and settings.authorization_endpoint):
        metadata = discover(settings.issuer, deadline, transport)
    elif settings.issuer and (
        settings.jwks_uri is None or settings.iss_parameter_supported is None
    ):
        # The id token cannot be checked without the JWKS; discovery also says whether the
        # server sends `iss` in the authorization response.
        try:
            metadata = discover(settings.issuer, deadline, transport)
        except ProviderUnreachable:
            metadata = {}
        except AuthorizationError as error:
            # Another issuer: the id token's would not match either, so say so before the
            # login rather than after it. Microsoft names its tenants by id in the issuer,
            # also when the URL used the tenant's domain name.
            if not definition.placeholders:
                raise
            names = ", ".join(f"--param {name}" for name in sorted(definition.placeholders))
            raise AuthorizationError(
                error.message,
                hint=f"the issuer is built from {names}: pass the value the provider's own "
                "issuer uses (for a Microsoft tenant its id, the GUID, not a domain name)",
            ) from None

    def pick(name: str) -> Any:
        return getattr(settings, name, None) or metadata.get(name)

    token_endpoint = pick("token_endpoint")
    if not token_endpoint:
        raise ConfigError(f"definition {definition.name!r} has no token endpoint")
    return Endpoints(
        issuer=settings.issuer or metadata.get("issuer"),
        authorization_endpoint=pick("authorization_endpoint"),
        token_endpoint=token_endpoint,
        revocation_endpoint=pick("revocation_endpoint"),
        userinfo_endpoint=pick("userinfo_endpoint"),
        introspection_endpoint=pick("introspection_endpoint"),
        device_authorization_endpoint=pick("device_authorization_endpoint"),
        jwks_uri=pick("jwks_uri"),
        probe_url=settings.probe_url,
        iss_parameter_supported=bool(
            settings.iss_parameter_supported
            if settings.iss_parameter_supported is not None
            else metadata.get("authorization_response_iss_parameter_supported", False)
        ),
        id_token_algorithms=_asymmetric(metadata.get("id_token_signing_alg_values_supported")),
        call_deadline=deadline,
        revocation_body=settings.revocation_body,
    )


def _asymmetric(algorithms: Any) -> tuple[str, ...]:
    """The advertised id-token algorithms minus "none" and shared-secret HMAC ones.

    The list comes from the discovery document; "none" would switch the signature check
    off, and HS* would make the client secret (or nothing, for a public client) the key.
    """
    listed = algorithms if isinstance(algorithms, list) else []
    kept = tuple(a for a in listed if isinstance(a, str) and a != "none" and not a.startswith("HS"))
    return kept or ("RS256",)


#: Token-response fields authlib interprets itself, with int(): "soon" or Infinity there
#: would make it drop the whole response, new refresh token included.
_AUTHLIB_READS = ("expires_in", "expires_at")
#: Under this prefix :func:`shield_lifetimes` hands those fields on, as the provider sent them.
_SHIELDED = "tokenctl:"
#: The refresh token's lifetime: not standardised (Keycloak, Xero and others; Intuit).
_REFRESH_LIFETIMES = (
    "refresh_expires_in",
    "refresh_token_expires_in",
    "x_refresh_token_expires_in",
)


def shield_lifetimes(client: Any) -> None:
    """Make an authlib client hand the provider's lifetime fields on without reading them.

    authlib's compliance hooks exist for providers that bend the standard; this one moves
    ``expires_in`` and ``expires_at`` under a prefix, so a malformed lifetime reaches
    :func:`grant_from_response`, which keeps the token set and calls the lifetime unknown.
    """

    def hook(response: Any) -> Any:
        import httpx2

        try:
            body = response.json()
        except ValueError:
            return response
        if not isinstance(body, dict) or all(
            type(body.get(name, 0)) is int for name in _AUTHLIB_READS
        ):
            return response  # absent or whole numbers: authlib's int() reads them safely
        moved = {(_SHIELDED + k if k in _AUTHLIB_READS else k): v for k, v in body.items()}
        # json.dumps, not httpx2's json=: it writes what the provider sent, Infinity too.
        return httpx2.Response(
            response.status_code,
            content=json.dumps(moved).encode("utf-8"),
            headers={"Content-Type": "application/json"},
            request=response.request,
        )

    client.register_compliance_hook("access_token_response", hook)
    client.register_compliance_hook("refresh_token_response", hook)


def _sent(token: Mapping[str, Any], name: str) -> Any:
    """A response field as the provider sent it, shielded from authlib or not."""
    return token.get(_SHIELDED + name, token.get(name))


def _seconds(value: Any) -> int | float | None:
    """A lifetime as a number of seconds (sent as a number or numeric string); ``None`` if not."""
    if isinstance(value, str):
        try:
            value = float(value)  # some providers (Azure AD v1) send "3599"
        except ValueError:
            return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value if value >= 0 else None


def _shown(value: Any) -> str:
    text = repr(value)  # repr escapes control characters
    return text if len(text) <= 40 else text[:37] + "..."


def _lifetime(
    token: Mapping[str, Any], names: tuple[str, ...], now: datetime, what: str
) -> tuple[datetime | None, str | None]:
    """The end of the first lifetime sent among ``names``, and a note if it is unusable.

    Missing, empty or 0 means no known end, as before; anything else that is not a
    non-negative number of seconds ending within the storable range is unusable.
    """
    for name in names:
        value = _sent(token, name)
        if value is None or value == "":
            continue
        seconds = _seconds(value)
        if seconds == 0:
            continue
        end = None
        if seconds is not None:
            try:
                end = add_checked(now, timedelta(seconds=seconds))
            except OverflowError:  # 1e300 seconds is no timedelta
                end = None
        if end is None:
            return None, (
                f"the provider sent an unusable lifetime ({name}={_shown(value)}); "
                f"{what} expiry is unknown"
            )
        return end, None
    return None, None


def grant_from_response(
    token: Mapping[str, Any], now: datetime, requested: tuple[str, ...], settings: OAuth2Settings
) -> Grant:
    """Normalise a token response; a missing ``scope`` means what was requested (RFC 6749).

    An unusable lifetime (``"soon"``, ``1e300``, negative) does not cost the token set:
    that expiry becomes unknown and the grant's ``notes`` say so.
    """
    access_token = token.get("access_token")
    if not isinstance(access_token, str) or not access_token:
        raise ProviderUnreachable("the provider's token response carries no access_token")
    expires_at, access_note = _lifetime(token, ("expires_in",), now, "the access token's")
    refresh_expires_at, refresh_note = _lifetime(
        token, _REFRESH_LIFETIMES, now, "the refresh token's"
    )
    scope = token.get("scope")
    if isinstance(scope, str):
        # Read back the way the provider joins them (Zoho: commas).
        scopes: tuple[str, ...] | None = settings.split_scopes(scope)
    elif isinstance(scope, list):
        scopes = tuple(str(s) for s in scope)
    else:
        scopes = requested or None
    return Grant(
        access_token=access_token,
        token_type=str(token.get("token_type", "Bearer")),
        refresh_token=token.get("refresh_token"),
        id_token=token.get("id_token"),
        expires_at=expires_at,
        refresh_expires_at=refresh_expires_at,
        scopes=scopes,
        notes=tuple(note for note in (access_note, refresh_note) if note),
    )


@contextlib.contextmanager
def token_call_errors(url: str, *, sent: Sequence[str | None] = ()) -> Iterator[None]:
    """Map the failures of an authlib token request (sync or awaited) onto tokenctl's errors.

    The one mapping for every token request: an OAuth error response is an
    :class:`OAuthFailure`; no answer, a server error or a missed deadline, and a body that
    is no token response are :class:`ProviderUnreachable`. ``sent`` are the secrets the
    request carried (refresh token, code, verifier, client secret): a provider that echoes
    one in its ``error_description`` must not put it into tokenctl's messages.
    """
    import httpx2
    from authlib.integrations.base_client import OAuthError

    try:
        yield
    except OAuthError as error:
        raise OAuthFailure(error.error, _without_secrets(error.description, sent)) from None
    except httpx2.HTTPError as error:
        raise unreachable(url, error) from None
    except ValueError as error:
        # authlib raises ValueError for a body that is not a token response.
        raise ProviderUnreachable(f"{url} did not answer with a token response ({error})") from None


#: The longest provider error description tokenctl repeats (the rest is cut).
DESCRIPTION_LIMIT = 300


def _without_secrets(description: str | None, sent: Sequence[str | None]) -> str | None:
    """A provider's error description with every secret tokenctl sent masked, and capped."""
    if description is None:
        return None
    text = str(description)
    for value in sent:
        if value and len(value) >= 4:  # shorter values would mask ordinary words
            text = text.replace(value, "[redacted]")
    return text if len(text) <= DESCRIPTION_LIMIT else text[:DESCRIPTION_LIMIT] + "…"


def _token_request(
    credentials: ClientCredentials,
    endpoints: Endpoints,
    transport: Transport | None,
    call: Callable[[Any], Any],
    *,
    sent: Sequence[str | None],
    **options: Any,
) -> Mapping[str, Any]:
    """Run one authlib token request ``call(client)`` at the token endpoint, errors mapped.

    ``sent``: the secrets the request carries besides the client secret.
    """
    url = endpoints.token_endpoint
    with _client(
        credentials, deadline=endpoints.call_deadline, transport=transport, **options
    ) as client:
        shield_lifetimes(client)
        with token_call_errors(url, sent=[*sent, credentials.client_secret]):
            result: Mapping[str, Any] = call(client)
    return result


def authorization_url(
    credentials: ClientCredentials,
    endpoints: Endpoints,
    *,
    redirect_uri: str,
    scopes: tuple[str, ...],
    state: str,
    code_verifier: str,
    extra: Mapping[str, str],
    scope_separator: str = " ",
) -> str:
    """Build the authorization URL (PKCE S256, state, nonce and extra parameters).

    ``scope_separator`` joins the scopes (RFC 6749: a space; Zoho: a comma).
    """
    if not endpoints.authorization_endpoint:
        raise ConfigError("the definition has no authorization endpoint")
    with _client(
        credentials,
        deadline=endpoints.call_deadline,
        redirect_uri=redirect_uri,
        scope=scope_separator.join(scopes) or None,
    ) as client:
        url, _ = client.create_authorization_url(
            endpoints.authorization_endpoint, state=state, code_verifier=code_verifier, **extra
        )
    return str(url)


def exchange_code(
    credentials: ClientCredentials,
    endpoints: Endpoints,
    *,
    code: str,
    code_verifier: str,
    redirect_uri: str,
    transport: Transport | None = None,
) -> Mapping[str, Any]:
    """Exchange an authorization code for tokens."""
    return _token_request(
        credentials,
        endpoints,
        transport,
        lambda client: client.fetch_token(
            endpoints.token_endpoint,
            grant_type="authorization_code",
            code=code,
            code_verifier=code_verifier,
            redirect_uri=redirect_uri,
        ),
        sent=(code, code_verifier),
        redirect_uri=redirect_uri,
    )


def refresh(
    credentials: ClientCredentials,
    endpoints: Endpoints,
    refresh_token: str,
    transport: Transport | None = None,
) -> Mapping[str, Any]:
    """The refresh grant. No scope is sent, so a partial grant is not refused."""
    return _token_request(
        credentials,
        endpoints,
        transport,
        lambda client: client.refresh_token(endpoints.token_endpoint, refresh_token=refresh_token),
        sent=(refresh_token,),
    )


def revoke(
    credentials: ClientCredentials,
    endpoints: Endpoints,
    token: str,
    hint: str,
    transport: Transport | None = None,
) -> tuple[bool, str]:
    """Revoke a token (RFC 7009); returns whether the provider confirmed, and what it said."""
    import httpx2

    url = endpoints.revocation_endpoint
    if not url:
        return False, "the definition has no revocation endpoint"
    with _client(credentials, deadline=endpoints.call_deadline, transport=transport) as client:
        try:
            if endpoints.revocation_body is RevocationBody.JSON:
                response = _revoke_as_json(client, credentials, url, token)
            else:
                response = client.revoke_token(url, token=token, token_type_hint=hint)
        except httpx2.HTTPError as error:
            return False, unreachable(url, error).message
    if response.status_code == 200:
        return True, "the provider confirmed the revocation"
    return False, f"the provider answered HTTP {response.status_code}"


def _revoke_as_json(client: Any, credentials: ClientCredentials, url: str, token: str) -> Any:
    """POST the revocation as JSON ``{"token": ...}``, the client authenticated as configured.

    Intuit documents only this body (docs/providers/quickbooks-online.md). authlib's
    ``revoke_token`` always form-encodes, so the request goes through the same client's
    session, as the device authorization request does.
    """
    body: dict[str, str] = {"token": token}
    auth: Any = None
    if credentials.auth_method == "client_secret_basic":
        auth = client.client_auth(credentials.auth_method)
    else:
        # authlib's body-based client authentication appends form fields, which would
        # break the JSON: the client goes into the JSON document instead.
        body["client_id"] = credentials.client_id
        if credentials.auth_method == "client_secret_post" and credentials.client_secret:
            body["client_secret"] = credentials.client_secret
    return client.request(
        "POST",
        url,
        content=json.dumps(body).encode("utf-8"),
        headers={"Content-Type": "application/json", "Accept": "application/json"},
        auth=auth,
        withhold_token=True,
    )


def introspect(
    credentials: ClientCredentials,
    endpoints: Endpoints,
    token: str,
    transport: Transport | None = None,
) -> bool:
    """Ask the introspection endpoint (RFC 7662) whether ``token`` is active."""
    import httpx2

    url = endpoints.introspection_endpoint
    assert url is not None
    with _client(credentials, deadline=endpoints.call_deadline, transport=transport) as client:
        try:
            response = client.introspect_token(url, token=token)
        except httpx2.HTTPError as error:
            raise unreachable(url, error) from None
    if response.status_code >= 500:
        raise ProviderUnreachable(f"{url} answered HTTP {response.status_code}")
    if response.status_code != 200:
        raise AuthorizationError(
            f"the introspection endpoint refused tokenctl's client (HTTP {response.status_code})",
            hint="introspection needs a confidential client; configure its secret",
        )
    return bool(response.json().get("active"))


def bearer_get(
    url: str, access_token: str, *, deadline: float, transport: Transport | None = None
) -> tuple[int, Mapping[str, Any] | None]:
    """GET ``url`` with the access token; returns the status and the JSON object if any."""
    status, body = bearer_get_any(url, access_token, deadline=deadline, transport=transport)
    return status, body if isinstance(body, dict) else None


def bearer_get_any(
    url: str, access_token: str, *, deadline: float, transport: Transport | None = None
) -> tuple[int, Any]:
    """GET ``url`` with the access token; returns the status and the JSON body if any."""
    import httpx2

    bearer = {"access_token": access_token, "token_type": "Bearer"}
    with _client(None, deadline=deadline, transport=transport, token=bearer) as client:
        try:
            response = client.get(url, headers={"Accept": "application/json"})
        except httpx2.HTTPError as error:
            raise unreachable(url, error) from None
    return response.status_code, _json_or_none(response)


def token_parameter_get(
    url: str,
    parameter: str,
    access_token: str,
    credentials: ClientCredentials | None,
    *,
    deadline: float,
    transport: Transport | None = None,
) -> tuple[int, Any]:
    """GET ``url`` with the access token in the query parameter ``parameter``.

    A token-validation call about the token it names (Twinfield's
    ``accesstokenvalidation?token=``), so no bearer header: the caller proves it is the
    client instead, by HTTP Basic when a client secret is stored.
    """
    import httpx2

    with _client(credentials, deadline=deadline, transport=transport) as client:
        auth = (
            client.client_auth("client_secret_basic")
            if credentials is not None and credentials.client_secret
            else None
        )
        try:
            response = client.request(
                "GET",
                url,
                params={parameter: access_token},
                headers={"Accept": "application/json"},
                auth=auth,
                withhold_token=True,
            )
        except httpx2.HTTPError as error:
            raise unreachable(url, error) from None
    return response.status_code, _json_or_none(response)


def _json_or_none(response: Any) -> Any:
    """The answer's JSON body; ``None`` when it has none (a plain or empty answer)."""
    try:
        return response.json()
    except ValueError:
        return None


def validate_id_token(
    id_token: str,
    *,
    endpoints: Endpoints,
    client_id: str,
    nonce: str | None,
    access_token: str | None,
    transport: Transport | None = None,
) -> dict[str, Any]:
    """Check the id token's signature (JWKS), issuer, audience, nonce and times."""
    from authlib.oidc.core import CodeIDToken
    from joserfc import jwt
    from joserfc.errors import JoseError
    from joserfc.jwk import KeySet
    from joserfc.jws import JWSRegistry

    if not endpoints.jwks_uri:
        raise AuthorizationError(
            "the provider returned an id token but its JWKS is unknown",
            hint="give the definition an issuer (for discovery) or oauth2.jwks_uri",
        )
    jwks = dict(_get_json(endpoints.jwks_uri, endpoints.call_deadline, transport))
    keys = KeySet.import_key_set(jwks)  # type: ignore[arg-type]
    options: dict[str, Any] = {"aud": {"essential": True, "values": [client_id]}}
    if endpoints.issuer:
        options["iss"] = {"essential": True, "values": [endpoints.issuer]}
    params: dict[str, Any] = {"client_id": client_id, "nonce": nonce}
    if access_token:
        params["access_token"] = access_token
    try:
        decoded = jwt.decode(
            id_token,
            key=keys,
            registry=JWSRegistry(algorithms=list(endpoints.id_token_algorithms)),
        )
        claims = CodeIDToken(decoded.claims, decoded.header, options, params)
        claims.validate(now=int(time.time()), leeway=ID_TOKEN_LEEWAY)
    except (JoseError, ValueError) as error:
        raise AuthorizationError(
            f"the id token failed validation: {type(error).__name__}: {error}",
            hint="the response did not come from the expected provider for this login",
        ) from None
    return dict(claims)


@dataclass(frozen=True)
class DeviceAuthorization:
    """The device authorization response (RFC 8628)."""

    device_code: str = field(repr=False)
    user_code: str
    verification_uri: str
    verification_uri_complete: str | None
    expires_in: int
    interval: int


def start_device_authorization(
    credentials: ClientCredentials,
    endpoints: Endpoints,
    scopes: tuple[str, ...],
    transport: Transport | None = None,
    scope_separator: str = " ",
) -> DeviceAuthorization:
    """Ask for a user code (RFC 8628 §3.1), authenticating as the client."""
    import httpx2

    url = endpoints.device_authorization_endpoint
    if not url:
        raise ConfigError("the definition has no device authorization endpoint")
    # authlib's client authentication adds client_id itself (also for method "none").
    data = {"scope": scope_separator.join(scopes)} if scopes else {}
    with _client(credentials, deadline=endpoints.call_deadline, transport=transport) as client:
        try:
            response = client.request(
                "POST",
                url,
                data=data,
                auth=client.client_auth(credentials.auth_method),
                withhold_token=True,
            )
        except httpx2.HTTPError as error:
            raise unreachable(url, error) from None
    body: Any = {}
    if response.headers.get("content-type", "").startswith("application/json"):
        try:
            body = response.json()
        except ValueError:
            body = None
    if not isinstance(body, dict):
        body = {}
    if response.status_code != 200:
        raise OAuthFailure(
            str(body.get("error", f"HTTP {response.status_code}")), body.get("error_description")
        )
    return _device_authorization(url, body)


def _device_authorization(url: str, body: Mapping[str, Any]) -> DeviceAuthorization:
    """RFC 8628 section 3.2's answer, checked: what is missing or malformed is named."""

    def text(name: str, *, required: bool) -> str | None:
        value = body.get(name)
        if isinstance(value, str) and value:
            return value
        if required or value is not None:
            raise ProviderUnreachable(
                f"the device authorization endpoint {url} sent no usable {name!r} "
                f"({_shown(value)})",
                hint="the provider does not follow RFC 8628 here: report it to its vendor, "
                "or use another login mode (--paste or the browser login)",
            )
        return None

    def seconds(name: str, default: int) -> int:
        value = _seconds(body.get(name, default))
        # An unusable duration: the RFC's own defaults (interval 5 s; a lifetime of 10 min).
        return default if value is None or value > 86_400 else max(int(value), 1)

    device_code = text("device_code", required=True) or ""
    user_code = text("user_code", required=True) or ""
    # `verification_url`: the name some providers (Google) used before the RFC settled.
    verification_uri = text("verification_uri", required=False) or text(
        "verification_url", required=True
    )
    return DeviceAuthorization(
        device_code=device_code,
        user_code=user_code,
        verification_uri=verification_uri or "",
        verification_uri_complete=text("verification_uri_complete", required=False),
        expires_in=seconds("expires_in", 600),
        interval=seconds("interval", 5),
    )


def _fetch_device_token(
    credentials: ClientCredentials,
    endpoints: Endpoints,
    device: DeviceAuthorization,
    transport: Transport | None = None,
) -> Mapping[str, Any]:
    return _token_request(
        credentials,
        endpoints,
        transport,
        lambda client: client.fetch_token(
            endpoints.token_endpoint, grant_type=DEVICE_GRANT, device_code=device.device_code
        ),
        sent=(device.device_code,),
    )


def poll_device_token(
    credentials: ClientCredentials,
    endpoints: Endpoints,
    device: DeviceAuthorization,
    *,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
    on_wait: Callable[[int], None] | None = None,
    timeout: float | None = None,
    transport: Transport | None = None,
) -> Mapping[str, Any]:
    """Poll the token endpoint (RFC 8628 §3.4-3.5) until approved, denied or expired.

    ``timeout`` (seconds) ends the wait earlier than the device code's own expiry.
    """
    interval = max(device.interval, 1)
    limit = device.expires_in if timeout is None else min(device.expires_in, timeout)
    deadline = clock() + limit
    while True:
        sleep(interval)
        if clock() > deadline:
            raise AuthorizationError(
                f"no approval arrived within {int(limit)} s; the device login was given up"
                if limit < device.expires_in
                else "the device code expired before the login was approved",
                hint="start the login again",
            )
        try:
            return _fetch_device_token(credentials, endpoints, device, transport)
        except OAuthFailure as failure:
            if failure.error == "authorization_pending":
                if on_wait:
                    on_wait(interval)
                continue
            if failure.error == "slow_down":
                interval += 5
                if on_wait:
                    on_wait(interval)
                continue
            if failure.error == "expired_token":
                raise AuthorizationError(
                    "the device code expired before the login was approved",
                    hint="start the login again",
                ) from None
            if failure.error == "access_denied":
                raise AuthorizationError(
                    "the login was denied on the device page",
                    hint="start again and approve the request",
                ) from None
            raise
