"""What the user sees around an interactive login, and the login itself.

The warning before the browser opens, who the grant belongs to (and refusing another
account than the token's), the tenant to record. How each mode obtains its grant is
:mod:`tokenctl.oauth.login_modes`; every question goes through :class:`IOStreams`.
"""

from __future__ import annotations

import secrets as random_source
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tokenctl.context import AppContext
from tokenctl.definitions.model import LOGIN_MODES, Definition, OAuth2Settings
from tokenctl.errors import AuthorizationError, TokenctlError, UsageError
from tokenctl.models import Token
from tokenctl.oauth.client import ProviderClient
from tokenctl.oauth.grants import secrets_of
from tokenctl.oauth.json_path import dig as _dig
from tokenctl.oauth.provider import Grant
from tokenctl.services.oauth_options import LoginOptions


@dataclass(frozen=True)
class LoginResult:
    """A completed login: the grant and who it was granted to."""

    grant: Grant
    account: str | None
    subject: str | None
    issuer: str | None
    attributes: dict[str, str]
    client: ProviderClient  # the one that obtained it: revoking it needs no new discovery


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


def _account_from(claims: Mapping[str, Any]) -> str | None:
    for key in ("email", "preferred_username", "upn", "name", "sub"):
        value = claims.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def _identify(
    grant: Grant, client: ProviderClient, nonce: str | None
) -> tuple[str | None, str | None]:
    """The account (and subject) the grant was issued to: id token first, then userinfo."""
    endpoints = client.endpoints
    claims: dict[str, Any] = {}
    if grant.id_token:
        claims = client.validate_id_token(
            grant.id_token, nonce=nonce, access_token=grant.access_token
        )
    if _account_from(claims) in (None, claims.get("sub")) and endpoints.userinfo_endpoint:
        status, body = client.bearer_get(endpoints.userinfo_endpoint, grant.access_token)
        if status == 200 and body:
            if claims.get("sub") and body.get("sub") not in (None, claims["sub"]):
                raise AuthorizationError("userinfo describes another subject than the id token")
            claims = {**body, **claims} if claims else dict(body)
    subject = claims.get("sub")
    return _account_from(claims), subject if isinstance(subject, str) else None


def refuse_another_account(
    ctx: AppContext,
    token: Token,
    definition: Definition,
    result: LoginResult,
    *,
    allow_account_change: bool,
) -> None:
    """A re-login must sign in as the account (and subject) ``token`` was retrieved as.

    Otherwise, unless ``allow_account_change``: the new grant is revoked, the refusal
    recorded in the token's history, and nothing else changes.
    """
    known_subject = token.attributes.get("subject")
    other_account = bool(token.account) and result.account != token.account
    other_subject = bool(known_subject and result.subject) and result.subject != known_subject
    if not (other_account or other_subject) or allow_account_change:
        return
    confirmed, said = result.client.revoke_grant(secrets_of(result.grant))
    revoked = "the new grant was revoked" if confirmed else f"revoking it failed ({said})"
    ctx.inventory.record_event(
        token,
        ctx.actor(),
        ctx.now(),
        event="renewed",
        outcome="refused",
        detail=f"login as {result.account}, expected {token.account}; {revoked}",
    )
    raise AuthorizationError(
        f"signed in as {result.account or 'an unknown account'!r}, but {token.name!r} "
        "was retrieved as "
        f"{token.account!r}; nothing was changed and {revoked}",
        hint=f"log out of {definition.title} and sign in as {token.account}, or pass "
        "--allow-account-change",
    )


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
        picked = ctx.io.choose(
            "Record the token for which tenant?",
            [name for _, name in choices],
            flag="--tenant ID",
            item="tenant",
        )
        tenant_id, name = choices[picked]
        return {"tenant_id": tenant_id, "tenant": name}
    # No terminal and no --tenant: record them all, as docs/login.md describes.
    ctx.io.warn(
        f"the login can use {len(choices)} tenants; recorded them all. Pass --tenant ID to "
        "record one."
    )
    return {"tenants": ", ".join(name for _, name in choices)}


def _login_attributes(
    ctx: AppContext,
    client: ProviderClient,
    grant: Grant,
    callback: Mapping[str, str],
    options: LoginOptions,
) -> dict[str, str]:
    """Per-provider facts recorded on the token: callback values, who-am-I, tenant."""
    settings = client.settings
    attributes = {
        attribute: callback[param]
        for param, attribute in settings.callback_attributes.items()
        if callback.get(param)
    }
    if settings.probe_attributes and settings.probe_url:
        from tokenctl.services.probe_attributes import values_from

        status, body = client.probe_get(grant.access_token)
        if 200 <= status < 300 and body is not None:
            attributes.update(values_from(settings, body))
        elif settings.probe_attributes_always:
            # Values the token's calls need (Twinfield's cluster): say they are missing.
            ctx.io.warn(
                f"could not record {', '.join(sorted(settings.probe_attributes))} "
                f"({settings.probe_url} answered {status})"
            )
    if settings.tenants_url:
        status, listing = bearer_get_list(client, settings.tenants_url, grant.access_token)
        if status == 200:
            attributes.update(_choose_tenant(ctx, settings, listing, options.tenant))
        else:
            ctx.io.warn(f"could not list tenants ({settings.tenants_url} answered {status})")
    return attributes


def bearer_get_list(client: ProviderClient, url: str, access_token: str) -> tuple[int, list[Any]]:
    """GET a JSON list (or an object holding one list) with the access token."""
    status, body = client.bearer_get_any(url, access_token)
    if isinstance(body, dict):
        lists = [value for value in body.values() if isinstance(value, list)]
        body = lists[0] if len(lists) == 1 else []
    return status, body if isinstance(body, list) else []


def _count_login_call(
    ctx: AppContext,
    definition: Definition,
    client: ProviderClient,
    account: str | None,
    number: int | None,
    at: datetime,
) -> None:
    """Count the login's code exchange against the definition's limits, if it has any.

    A store that cannot count it now leaves the login as it is, with a warning: the user
    already signed in, and the count only makes later refreshes more careful.
    """
    if not definition.limits.any:
        return
    from tokenctl.services.budget import count_login

    try:
        count_login(ctx, definition, client.credentials.client_id, account, number, at)
    except TokenctlError as error:
        ctx.io.warn(f"the login's token call was not counted ({error.message})")


def interactive_login(
    ctx: AppContext,
    definition: Definition,
    *,
    token_name: str,
    expected_account: str | None,
    options: LoginOptions,
    params: Mapping[str, str] | None = None,
    on_success: Callable[[LoginResult], None] | None = None,
    token_number: int | None = None,
) -> LoginResult:
    """Obtain a new grant by an interactive login, and say whose it is.

    ``params`` fill the definition's placeholders (tenant, environment, ...).
    ``token_number``: the token a re-login renews (its token calls are counted for it).
    ``on_success`` checks and stores the result before the browser is told it worked;
    a :class:`TokenctlError` from it becomes the browser's failure page.
    """
    from tokenctl.oauth.login_modes import LoginRequest, LoginSession, obtain
    from tokenctl.oauth.pages import failure_page, success_page
    from tokenctl.oauth.provider import grant_from_response

    client = ctx.provider_client(definition, params or {})
    definition = client.definition  # its placeholders filled
    settings = client.settings
    mode = options.mode or settings.login_mode
    if mode not in LOGIN_MODES:
        raise UsageError(f"unknown login mode {mode!r}")
    ctx.inventory.ensure_secrets_writable()
    client.credentials  # noqa: B018 - read now: a missing client secret fails before the login
    endpoints = client.endpoints
    # The device grant has no authorization request to carry a nonce.
    nonce = (
        random_source.token_urlsafe(16)
        if "openid" in settings.scopes and mode != "device"
        else None
    )
    request = LoginRequest(
        settings,
        client,
        nonce,
        open_browser=options.open_browser,
        reuse_session=options.reuse_session,
        timeout=options.timeout,
    )
    _warn_before_login(ctx, definition, expected_account, options)
    session = LoginSession(ctx.io, ctx.open_browser, ctx.sleep, ctx.monotonic)
    try:
        answer = obtain(mode, request, session)
        exchanged_at = ctx.now()
        grant = grant_from_response(answer.response, exchanged_at, settings.scopes, settings)
        try:
            account, subject = _identify(grant, client, nonce)
            attributes = _login_attributes(ctx, client, grant, answer.callback, options)
            # A provider without OpenID (Exact Online) says who signed in only through
            # its who-am-I call: the definition's `account` probe attribute.
            from tokenctl.services.probe_attributes import ACCOUNT_ATTRIBUTE

            probed_account = attributes.pop(ACCOUNT_ATTRIBUTE, None)
            if account is None:
                account = probed_account
        except TokenctlError:
            # The code exchange was a token call all the same.
            _count_login_call(ctx, definition, client, expected_account, token_number, exchanged_at)
            # Nothing will be stored: leave no live grant behind at the provider.
            client.revoke_grant(secrets_of(grant))
            raise
        attributes.update({k: v for k, v in (params or {}).items() if v})
        # Counted at the exchange: the access token's expiry (and so the first refresh
        # the provider allows) is reckoned from then too.
        _count_login_call(ctx, definition, client, account, token_number, exchanged_at)
        result = LoginResult(grant, account, subject, endpoints.issuer, attributes, client)
        # The browser hears "retrieved" only once the caller has checked and stored it.
        if on_success is not None:
            on_success(result)
        for note in grant.notes:
            ctx.io.warn(note)
        session.finish(success_page(token_name, account, definition.title))
        return result
    except TokenctlError as error:
        session.finish(failure_page(error.message))
        raise
    finally:
        session.close()
