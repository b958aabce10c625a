"""OAuth services: interactive login, refresh under a lock, the validity probe, revocation.

The login runs in loopback, device or paste mode. Everything talks to the provider
through :mod:`tokenctl.oauth.provider` (authlib on httpx2).
"""

from __future__ import annotations

import contextlib
import secrets as random_source
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any
from urllib.parse import parse_qs, urlsplit

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
from tokenctl.services.oauth_options import LOGIN_MODES, LoginOptions


@dataclass(frozen=True)
class LoginResult:
    """A completed login: the grant and who it was granted to."""

    grant: Grant
    account: str | None
    subject: str | None
    issuer: str | None
    endpoints: Endpoints
    credentials: ClientCredentials
    attributes: dict[str, str]


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


# -- the interactive login -------------------------------------------------------------------


def _warn_before_login(
    ctx: AppContext, definition: Definition, expected_account: str | None, options: LoginOptions
) -> None:
    io = ctx.io
    title = definition.title
    lines = [
        f"Before you sign in to {title}:",
        f"  * Log out of {title} in your browser first, or use a private window: an existing "
        "session is reused and would decide which account the token belongs to.",
        "  * Sign in with an account that has sufficient permissions and access to all "
        "administrations: the token carries that account's rights.",
    ]
    if expected_account:
        lines.append(f"  * Expected account: {expected_account}")
    for line in lines:
        io.warn(line) if line is lines[0] else io.status(line)
    if not options.assume_yes and not io.confirm("Continue with the login?", flag="--yes"):
        raise AuthorizationError("login cancelled", hint="run the command again when ready")


def _authorize_params(
    settings: OAuth2Settings, options: LoginOptions, nonce: str | None
) -> dict[str, str]:
    params = dict(settings.authorize_params)
    if not options.reuse_session:
        params.update(settings.fresh_login_params)
    if nonce is not None:
        params["nonce"] = nonce
    return params


def _account_from(claims: Mapping[str, Any]) -> str | None:
    for key in ("email", "preferred_username", "upn", "name", "sub"):
        value = claims.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def _identify(
    ctx: AppContext,
    grant: Grant,
    endpoints: Endpoints,
    credentials: ClientCredentials,
    nonce: str | None,
) -> tuple[str | None, str | None]:
    """The account (and subject) the grant was issued to: id token first, then userinfo."""
    from tokenctl.oauth.provider import bearer_get, validate_id_token

    claims: dict[str, Any] = {}
    if grant.id_token:
        claims = validate_id_token(
            grant.id_token,
            endpoints=endpoints,
            client_id=credentials.client_id,
            nonce=nonce,
            access_token=grant.access_token,
        )
    if _account_from(claims) in (None, claims.get("sub")) and endpoints.userinfo_endpoint:
        status, body = bearer_get(endpoints.userinfo_endpoint, grant.access_token)
        if status == 200 and body:
            if claims.get("sub") and body.get("sub") not in (None, claims["sub"]):
                raise AuthorizationError("userinfo describes another subject than the id token")
            claims = {**body, **claims} if claims else dict(body)
    subject = claims.get("sub")
    return _account_from(claims), subject if isinstance(subject, str) else None


def _authorization_request(
    settings: OAuth2Settings,
    credentials: ClientCredentials,
    endpoints: Endpoints,
    options: LoginOptions,
    scopes: tuple[str, ...],
    nonce: str | None,
    redirect_uri: str,
    state: str,
) -> tuple[str, str]:
    """The authorization URL for one login, and the PKCE verifier it commits to."""
    from tokenctl.oauth.provider import authorization_url

    verifier = random_source.token_urlsafe(64)
    url = authorization_url(
        credentials,
        endpoints,
        redirect_uri=redirect_uri,
        scopes=scopes,
        state=state,
        code_verifier=verifier,
        extra=_authorize_params(settings, options, nonce),
    )
    return url, verifier


def _loopback_code(
    ctx: AppContext,
    settings: OAuth2Settings,
    credentials: ClientCredentials,
    endpoints: Endpoints,
    options: LoginOptions,
    scopes: tuple[str, ...],
    nonce: str | None,
    finish: list[Any],
    *,
    relay: bool = False,
) -> tuple[str, str, str, dict[str, str]]:
    """Run the browser flow; returns (code, verifier, redirect_uri, callback parameters).

    In relay mode the provider redirects to the organisation's HTTPS relay page, which
    forwards the query to this listener; the port travels at the front of the state.
    """
    from tokenctl.oauth.loopback import CallbackCheck, LoopbackListener
    from tokenctl.oauth.pages import failure_page

    listener = LoopbackListener(
        CallbackCheck("", endpoints.issuer, endpoints.iss_parameter_supported),
        port=settings.redirect_port or 0,
    )
    random_part = random_source.token_urlsafe(24)
    state = f"{listener.port}.{random_part}" if relay else random_part
    listener.expect_state(state)
    listener.start()
    finish.append(listener)
    redirect_uri = listener.redirect_uri
    if relay:
        if not settings.redirect_uri:
            raise ConfigError("relay mode needs the definition's oauth2.redirect_uri")
        redirect_uri = settings.redirect_uri
    url, verifier = _authorization_request(
        settings, credentials, endpoints, options, scopes, nonce, redirect_uri, state
    )
    io = ctx.io
    io.status(f"Listening for the login on {listener.redirect_uri}")
    if relay:
        io.status(f"The provider returns to {redirect_uri}, which forwards to this listener.")
    if options.open_browser:
        io.status("Opening the browser. If it does not open, visit this URL:")
        io.status(url)
        ctx.open_browser(url)
    else:
        io.status("Open this URL in a browser on this machine:")
        io.status(url)
        io.status(
            "Working over SSH? Forward the port first, from your own machine:\n"
            f"  ssh -L {listener.port}:127.0.0.1:{listener.port} USER@THIS-HOST\n"
            "then open the URL in your local browser."
        )
    io.status(f"Waiting up to {int(options.timeout)} s for the browser to come back ...")
    callback = listener.wait(options.timeout)
    if callback is None:
        raise AuthorizationError(
            f"no login arrived within {int(options.timeout)} s",
            hint="run the command again (use --timeout to wait longer)",
        )
    if callback.error:
        description = callback.params.get("error_description")
        listener.finish(failure_page(f"The provider refused: {callback.error}"))
        if callback.error == "access_denied":
            raise AuthorizationError(
                "the login was denied (access_denied): consent was refused or the account "
                "may not use this application",
                hint="run the command again and approve the request",
            )
        raise OAuthFailure(callback.error, description)
    assert callback.code is not None
    return callback.code, verifier, redirect_uri, callback.params


def _paste_code(
    ctx: AppContext,
    settings: OAuth2Settings,
    credentials: ClientCredentials,
    endpoints: Endpoints,
    options: LoginOptions,
    scopes: tuple[str, ...],
    nonce: str | None,
) -> tuple[str, str, str, dict[str, str]]:
    """Redirect to the registered HTTPS URI; the user pastes the redirected URL back."""
    from tokenctl.oauth.loopback import CallbackCheck, check_callback

    redirect_uri = settings.redirect_uri
    if not redirect_uri:
        raise ConfigError("paste mode needs the definition's oauth2.redirect_uri")
    state = random_source.token_urlsafe(24)
    url, verifier = _authorization_request(
        settings, credentials, endpoints, options, scopes, nonce, redirect_uri, state
    )
    io = ctx.io
    io.status("Open this URL in a browser and sign in:")
    io.status(url)
    if options.open_browser:
        ctx.open_browser(url)
    io.status(
        f"The browser then lands on {redirect_uri}; copy the full address from the "
        "address bar and paste it here."
    )
    if io.can_prompt:
        io.stderr.write("Redirected URL: ")
        io.stderr.flush()
    pasted = io.stdin.readline().strip()
    if not pasted:
        raise AuthorizationError("no redirected URL was pasted", hint="run the command again")
    parts = urlsplit(pasted)
    if f"{parts.scheme}://{parts.netloc}{parts.path}" != redirect_uri.split("?")[0]:
        raise AuthorizationError(
            "the pasted URL is not the registered redirect URI",
            hint=f"paste the address that starts with {redirect_uri}",
        )
    params = {key: values[0] for key, values in parse_qs(parts.query).items()}
    reason = check_callback(
        params, CallbackCheck(state, endpoints.issuer, endpoints.iss_parameter_supported)
    )
    if reason is not None:
        raise AuthorizationError(
            f"the pasted URL was rejected: {reason}",
            hint="paste the URL of this login, not an older one",
        )
    if params.get("error"):
        raise OAuthFailure(params["error"], params.get("error_description"))
    return params["code"], verifier, redirect_uri, params


def _dig(document: Any, path: str) -> str | None:
    """The value at a dotted path (``d.results.0.CurrentDivision``) of a JSON document."""
    current = document
    for part in path.split("."):
        if isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        elif isinstance(current, dict) and part in current:
            current = current[part]
        else:
            return None
    if isinstance(current, (str, int, float)) and not isinstance(current, bool):
        return str(current)
    return None


def _choose_tenant(
    ctx: AppContext, settings: OAuth2Settings, tenants: list[Any], wanted: str | None
) -> dict[str, str]:
    """Pick the tenant (organisation, administration) the token is recorded for."""
    choices = []
    for item in tenants:
        tenant_id = _dig(item, settings.tenant_id_field)
        if tenant_id is None:
            continue
        name = _dig(item, settings.tenant_name_field) if settings.tenant_name_field else None
        choices.append((tenant_id, name or tenant_id))
    if not choices:
        ctx.io.warn("the provider lists no tenant this token can use")
        return {}
    if wanted is not None:
        for tenant_id, name in choices:
            if wanted in (tenant_id, name):
                return {"tenant_id": tenant_id, "tenant": name}
        raise UsageError(
            f"tenant {wanted!r} is not among those the login can use: "
            + ", ".join(name for _, name in choices)
        )
    if len(choices) == 1:
        tenant_id, name = choices[0]
        return {"tenant_id": tenant_id, "tenant": name}
    if ctx.io.can_prompt:
        for index, (_, name) in enumerate(choices, 1):
            ctx.io.status(f"  {index}. {name}")
        ctx.io.stderr.write("Record the token for which tenant? [1]: ")
        ctx.io.stderr.flush()
        answer = ctx.io.stdin.readline().strip() or "1"
        if answer.isdigit() and 1 <= int(answer) <= len(choices):
            tenant_id, name = choices[int(answer) - 1]
            return {"tenant_id": tenant_id, "tenant": name}
        raise UsageError(f"no tenant number {answer!r}", hint="pass --tenant ID")
    ctx.io.warn(
        f"the login can use {len(choices)} tenants; recorded them all. Pass --tenant ID to "
        "record one."
    )
    return {"tenants": ", ".join(name for _, name in choices)}


def _login_attributes(
    ctx: AppContext,
    settings: OAuth2Settings,
    grant: Grant,
    callback: Mapping[str, str],
    options: LoginOptions,
) -> dict[str, str]:
    """Per-provider facts recorded on the token: callback values, who-am-I, tenant."""
    from tokenctl.oauth.provider import bearer_get

    attributes = {
        attribute: callback[param]
        for param, attribute in settings.callback_attributes.items()
        if callback.get(param)
    }
    if settings.probe_attributes and settings.probe_url:
        status, body = bearer_get(settings.probe_url, grant.access_token)
        if 200 <= status < 300 and body is not None:
            for attribute, path in settings.probe_attributes.items():
                value = _dig(body, path)
                if value is not None:
                    attributes[attribute] = value
    if settings.tenants_url:
        status, listing = bearer_get_list(settings.tenants_url, grant.access_token)
        if status == 200:
            attributes.update(_choose_tenant(ctx, settings, listing, options.tenant))
        else:
            ctx.io.warn(f"could not list tenants ({settings.tenants_url} answered {status})")
    return attributes


def bearer_get_list(url: str, access_token: str) -> tuple[int, list[Any]]:
    """GET a JSON list (or an object holding one list) with the access token."""
    from tokenctl.oauth.provider import bearer_get_any

    status, body = bearer_get_any(url, access_token)
    if isinstance(body, dict):
        lists = [value for value in body.values() if isinstance(value, list)]
        body = lists[0] if len(lists) == 1 else []
    return status, body if isinstance(body, list) else []


def interactive_login(
    ctx: AppContext,
    definition: Definition,
    *,
    token_name: str,
    expected_account: str | None,
    options: LoginOptions,
    params: Mapping[str, str] | None = None,
    on_success: Callable[[LoginResult], None] | None = None,
) -> LoginResult:
    """Obtain a new grant by an interactive login, and say whose it is.

    ``params`` fill the definition's placeholders (tenant, environment, ...).
    ``on_success`` checks and stores the result before the browser is told it worked;
    a :class:`TokenctlError` from it becomes the browser's failure page.
    """
    from tokenctl.definitions.model import fill_placeholders
    from tokenctl.oauth.pages import failure_page, success_page
    from tokenctl.oauth.provider import (
        exchange_code,
        grant_from_response,
        poll_device_token,
        resolve_endpoints,
        start_device_authorization,
    )

    definition = fill_placeholders(definition, params or {})
    settings = oauth_settings(definition)
    mode = options.mode or settings.login_mode
    if mode not in LOGIN_MODES:
        raise UsageError(f"unknown login mode {mode!r}")
    ctx.secrets.ensure_available()
    credentials = client_credentials(ctx, definition)
    endpoints = resolve_endpoints(definition)
    scopes = settings.scopes
    # The device grant has no authorization request to carry a nonce.
    nonce = random_source.token_urlsafe(16) if "openid" in scopes and mode != "device" else None
    _warn_before_login(ctx, definition, expected_account, options)
    listeners: list[Any] = []
    callback: dict[str, str] = {}
    try:
        if mode == "device":
            device = start_device_authorization(credentials, endpoints, scopes)
            ctx.io.warn(f"Enter the code {device.user_code} at {device.verification_uri}")
            if device.verification_uri_complete:
                ctx.io.status(f"or open {device.verification_uri_complete}")
            if options.open_browser:
                ctx.open_browser(device.verification_uri_complete or device.verification_uri)
            response = poll_device_token(
                credentials,
                endpoints,
                device,
                sleep=ctx.sleep,
                clock=ctx.monotonic,
                timeout=options.timeout,
            )
        else:
            if mode == "paste":
                code, verifier, redirect_uri, callback = _paste_code(
                    ctx, settings, credentials, endpoints, options, scopes, nonce
                )
            else:
                code, verifier, redirect_uri, callback = _loopback_code(
                    ctx,
                    settings,
                    credentials,
                    endpoints,
                    options,
                    scopes,
                    nonce,
                    listeners,
                    relay=mode == "relay",
                )
            response = exchange_code(
                credentials,
                endpoints,
                code=code,
                code_verifier=verifier,
                redirect_uri=redirect_uri,
            )
        grant = grant_from_response(response, ctx.now(), scopes, settings)
        try:
            account, subject = _identify(ctx, grant, endpoints, credentials, nonce)
            attributes = _login_attributes(ctx, settings, grant, callback, options)
        except TokenctlError:
            # Nothing will be stored: leave no live grant behind at the provider.
            revoke_grant(ctx, definition, secrets_of(grant), endpoints)
            raise
        attributes.update({k: v for k, v in (params or {}).items() if v})
        result = LoginResult(
            grant, account, subject, endpoints.issuer, endpoints, credentials, attributes
        )
        # The browser hears "retrieved" only once the caller has checked and stored it.
        if on_success is not None:
            on_success(result)
        for listener in listeners:
            listener.finish(success_page(token_name, account, definition.title))
        return result
    except TokenctlError as error:
        for listener in listeners:
            listener.finish(failure_page(error.message))
        raise
    finally:
        for listener in listeners:
            listener.close()


# -- storing a grant -------------------------------------------------------------------------


def secrets_of(grant: Grant, previous: TokenSecrets | None = None) -> TokenSecrets:
    """The secret set to store: a refresh response may omit the refresh and id token."""
    return TokenSecrets(
        access_token=grant.access_token,
        refresh_token=grant.refresh_token or (previous.refresh_token if previous else None),
        id_token=grant.id_token or (previous.id_token if previous else None),
        token_type=grant.token_type,
    )


def grant_fields(
    grant: Grant, definition: Definition, now: datetime, *, login: bool, has_refresh: bool
) -> TokenChanges:
    """Inventory fields describing a grant (never its secret values)."""
    lifetimes = definition.lifetimes
    refresh_expires_at = grant.refresh_expires_at
    if refresh_expires_at is None and login and lifetimes.refresh_token is not None:
        refresh_expires_at = now + lifetimes.refresh_token
    fields: TokenChanges = {
        "expires_at": grant.expires_at,
        "granted_scopes": grant.scopes,
        "secret_set_at": now,
        "refreshed_at": now,
        "invalid_at": None,
        "invalid_reason": None,
        "has_refresh_token": has_refresh,
    }
    if refresh_expires_at is not None or login:
        fields["refresh_expires_at"] = refresh_expires_at
    return fields


def missing_scopes(grant: Grant, definition: Definition) -> list[str]:
    """Required scopes the grant lacks."""
    if grant.scopes is None:
        return []
    return sorted(set(definition.required_scopes) - set(grant.scopes))


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
        return RefreshOutcome(save_refreshed(ctx, current, refreshed, now), refreshed=True)


@dataclass(frozen=True)
class RefreshedState:
    """What a refresh response changes: the secrets to store and the record's fields."""

    secrets: TokenSecrets
    fields: TokenChanges
    detail: str


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
    fields = grant_fields(
        grant, definition, now, login=False, has_refresh=bool(new_secrets.refresh_token)
    )
    rotated = grant.refresh_token not in (None, stored.refresh_token)
    detail = "refresh grant" + (", refresh token rotated" if rotated else "")
    return RefreshedState(new_secrets, fields, detail)


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
                status, _ = bearer_get(url, access_token)
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
