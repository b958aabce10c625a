"""How a login obtains its grant: the authorization request and one strategy per mode.

loopback, relay and paste each bring back one :class:`AuthorizationCode`, which
:func:`obtain` exchanges at the token endpoint; device polls the token endpoint itself.
Every mode answers with one :class:`TokenResponse`. What the user sees around the
login (the warning, the account, the tenant) lives in :mod:`tokenctl.services.login`.
"""

from __future__ import annotations

import secrets as random_source
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from tokenctl.definitions.model import OAuth2Settings
from tokenctl.errors import AuthorizationError, ConfigError
from tokenctl.oauth.provider import ClientCredentials, Endpoints, OAuthFailure

if TYPE_CHECKING:
    from tokenctl.iostreams import IOStreams
    from tokenctl.oauth.client import ProviderClient
    from tokenctl.oauth.loopback import LoopbackListener


@dataclass(frozen=True)
class LoginRequest:
    """What every mode needs to know about one login: client, provider, nonce, options."""

    settings: OAuth2Settings
    client: ProviderClient  # every call to the provider goes through it
    nonce: str | None  # None: no id token is asked for, or the mode cannot carry one
    open_browser: bool
    reuse_session: bool  # True: do not ask the provider for a fresh login
    timeout: float  # seconds to wait for the browser or the device approval

    @property
    def credentials(self) -> ClientCredentials:
        """The client registration."""
        return self.client.credentials

    @property
    def endpoints(self) -> Endpoints:
        """The provider's endpoints."""
        return self.client.endpoints

    @property
    def scopes(self) -> tuple[str, ...]:
        """The scopes the login asks for."""
        return self.settings.scopes


@dataclass
class LoginSession:
    """The login's dealings with the person and the browser.

    Streams, the browser opener and the clock for polling come from the AppContext;
    the session also holds the loopback listeners whose browser tab waits to hear how
    the login ended (:meth:`finish`) — only after the caller has checked and stored it.
    """

    io: IOStreams
    open_browser: Callable[[str], bool]
    sleep: Callable[[float], None]
    monotonic: Callable[[], float]
    _listeners: list[LoopbackListener] = field(default_factory=list, init=False, repr=False)

    def hold(self, listener: LoopbackListener) -> None:
        """Keep ``listener`` open until the outcome is known."""
        self._listeners.append(listener)

    def finish(self, final_page: bytes) -> None:
        """Show every waiting browser tab the page that ends the login."""
        for listener in self._listeners:
            listener.finish(final_page)

    def close(self) -> None:
        """Close the listeners."""
        for listener in self._listeners:
            listener.close()


@dataclass(frozen=True)
class AuthorizationCode:
    """What the browser brought back: the code, and what its exchange must repeat."""

    code: str = field(repr=False)
    verifier: str = field(repr=False)  # the PKCE verifier the request committed to
    redirect_uri: str
    # Every parameter of the callback, for per-provider facts; holds the code: no repr.
    callback: Mapping[str, str] = field(repr=False)


@dataclass(frozen=True)
class TokenResponse:
    """The token endpoint's answer to a login, and the callback parameters that led to it."""

    response: Mapping[str, Any] = field(repr=False)
    callback: Mapping[str, str] = field(default_factory=dict, repr=False)  # none for device


def authorize_params(request: LoginRequest) -> dict[str, str]:
    """The extra parameters of the authorization request (provider's own, fresh login, nonce)."""
    settings = request.settings
    params = dict(settings.authorize_params)
    if not request.reuse_session:
        params.update(settings.fresh_login_params)
    if request.nonce is not None:
        params["nonce"] = request.nonce
    return params


def authorization_request(request: LoginRequest, redirect_uri: str, state: str) -> tuple[str, str]:
    """The authorization URL for one login, and the PKCE verifier it commits to."""
    from tokenctl.oauth.provider import authorization_url

    verifier = random_source.token_urlsafe(64)
    url = authorization_url(
        request.credentials,
        request.endpoints,
        redirect_uri=redirect_uri,
        scopes=request.scopes,
        state=state,
        code_verifier=verifier,
        extra=authorize_params(request),
        scope_separator=request.settings.scope_separator,
    )
    return url, verifier


def loopback(request: LoginRequest, session: LoginSession) -> AuthorizationCode:
    """The browser returns to a one-shot listener on 127.0.0.1."""
    return _browser_to_listener(request, session, via_relay=False)


def relay(request: LoginRequest, session: LoginSession) -> AuthorizationCode:
    """The provider returns to the organisation's HTTPS relay page, then to the listener.

    The relay page forwards the query to 127.0.0.1; the port travels at the front of the
    state.
    """
    return _browser_to_listener(request, session, via_relay=True)


def _browser_to_listener(
    request: LoginRequest, session: LoginSession, *, via_relay: bool
) -> AuthorizationCode:
    from tokenctl.oauth.loopback import CallbackCheck, LoopbackListener
    from tokenctl.oauth.pages import failure_page

    settings, endpoints = request.settings, request.endpoints
    listener = LoopbackListener(
        CallbackCheck("", endpoints.issuer, endpoints.iss_parameter_supported),
        port=settings.redirect_port or 0,
        host=settings.redirect_host,
        definition=request.client.definition.name,
    )
    random_part = random_source.token_urlsafe(24)
    state = f"{listener.port}.{random_part}" if via_relay else random_part
    listener.expect_state(state)
    listener.start()
    session.hold(listener)
    redirect_uri = listener.redirect_uri
    if via_relay:
        if not settings.redirect_uri:
            raise ConfigError("relay mode needs the definition's oauth2.redirect_uri")
        redirect_uri = settings.redirect_uri
    url, verifier = authorization_request(request, redirect_uri, state)
    io = session.io
    io.status(f"Listening for the login on {listener.redirect_uri}")
    if via_relay:
        io.status(f"The provider returns to {redirect_uri}, which forwards to this listener.")
    if request.open_browser:
        io.status("Opening the browser. If it does not open, visit this URL:")
        io.status(url)
        session.open_browser(url)
    else:
        io.status("Open this URL in a browser on this machine:")
        io.status(url)
        io.status(
            "Working over SSH? Forward the port first, from your own machine:\n"
            f"  ssh -L {listener.port}:127.0.0.1:{listener.port} USER@THIS-HOST\n"
            "then open the URL in your local browser."
        )
    io.status(f"Waiting up to {int(request.timeout)} s for the browser to come back ...")
    callback = listener.wait(request.timeout)
    if callback is None:
        raise AuthorizationError(
            f"no login arrived within {int(request.timeout)} s",
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
    return AuthorizationCode(callback.code, verifier, redirect_uri, callback.params)


def paste(request: LoginRequest, session: LoginSession) -> AuthorizationCode:
    """Redirect to the registered HTTPS URI; the user pastes the redirected URL back."""
    from tokenctl.oauth.loopback import CallbackCheck, parse_callback

    endpoints = request.endpoints
    redirect_uri = request.settings.redirect_uri
    if not redirect_uri:
        raise ConfigError("paste mode needs the definition's oauth2.redirect_uri")
    state = random_source.token_urlsafe(24)
    url, verifier = authorization_request(request, redirect_uri, state)
    io = session.io
    io.status("Open this URL in a browser and sign in:")
    io.status(url)
    if request.open_browser:
        session.open_browser(url)
    io.status(
        f"The browser then lands on {redirect_uri}; copy the full address from the "
        "address bar and paste it here."
    )
    # Without a terminal the first line of stdin is the URL (docs/commands.md).
    pasted = io.read_line("Redirected URL")
    if not pasted:
        raise AuthorizationError("no redirected URL was pasted", hint="run the command again")
    parts = urlsplit(pasted)
    if f"{parts.scheme}://{parts.netloc}{parts.path}" != redirect_uri.split("?")[0]:
        raise AuthorizationError(
            "the pasted URL is not the registered redirect URI",
            hint=f"paste the address that starts with {redirect_uri}",
        )
    params, reason = parse_callback(
        parts.query, CallbackCheck(state, endpoints.issuer, endpoints.iss_parameter_supported)
    )
    if reason is not None:
        raise AuthorizationError(
            f"the pasted URL was rejected: {reason}",
            hint="paste the URL of this login, not an older one",
        )
    if params.get("error"):
        raise OAuthFailure(params["error"], params.get("error_description"))
    return AuthorizationCode(params["code"], verifier, redirect_uri, params)


def device(request: LoginRequest, session: LoginSession) -> TokenResponse:
    """A code entered on another device (RFC 8628); polls until approved, denied or expired."""
    client = request.client
    authorization = client.start_device_authorization(request.scopes)
    session.io.warn(f"Enter the code {authorization.user_code} at {authorization.verification_uri}")
    if authorization.verification_uri_complete:
        session.io.status(f"or open {authorization.verification_uri_complete}")
    if request.open_browser:
        session.open_browser(
            authorization.verification_uri_complete or authorization.verification_uri
        )
    response = client.poll_device_token(
        authorization,
        sleep=session.sleep,
        clock=session.monotonic,
        timeout=request.timeout,
    )
    return TokenResponse(response)


#: The modes whose browser brings back an authorization code.
CODE_MODES: Mapping[str, Callable[[LoginRequest, LoginSession], AuthorizationCode]] = {
    "loopback": loopback,
    "relay": relay,
    "paste": paste,
}


def obtain(mode: str, request: LoginRequest, session: LoginSession) -> TokenResponse:
    """Run the login ``mode`` (one of ``LOGIN_MODES``) and return the token endpoint's answer."""
    if mode == "device":
        return device(request, session)
    authorized = CODE_MODES[mode](request, session)
    response = request.client.exchange_code(
        code=authorized.code,
        code_verifier=authorized.verifier,
        redirect_uri=authorized.redirect_uri,
    )
    return TokenResponse(response, authorized.callback)
