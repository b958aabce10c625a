"""A local double of Intuit's OAuth 2.0 server (QuickBooks Online), for the tests.

It implements only what Intuit documents, on one HTTP server on 127.0.0.1 (a free
port). Every path is Intuit's own, so a definition override only swaps the hosts:

* ``GET /connect/oauth2``            authorization (appcenter.intuit.com)
* ``POST /oauth2/v1/tokens/bearer``  token endpoint (oauth.platform.intuit.com)
* ``POST /v2/oauth2/tokens/revoke``  revocation (developer.api.intuit.com)
* ``GET /v1/openid_connect/userinfo`` userinfo (accounts.platform.intuit.com)
* ``GET /op/v1/jwks``                the ID token's signing keys (the issuer is ``/op/v1``)

Next to each behaviour is the page it comes from. Where Intuit's documentation is silent,
the comment says so, and docs/providers/quickbooks-online.md lists it under what the
double showed. The sign-in and consent pages are the double's own (their HTML is not
documented): they carry the element ids that ``tests/peers/browser_driver.py`` fills.

The double has its own clock, ``now()``, that a test moves with :meth:`advance`:
token lifetimes, the daily refresh-token replacement and the inactivity limit follow it.
ID tokens are dated by the wall clock, because tokenctl checks them against its own.
"""

from __future__ import annotations

import base64
import enum
import html
import http.server
import ipaddress
import json
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

# -- Sources ----------------------------------------------------------------------------------
OAUTH_DOC = "https://developer.intuit.com/app/developer/qbo/docs/develop/authentication-and-authorization/oauth-2.0"
FAQ_DOC = "https://developer.intuit.com/app/developer/qbo/docs/develop/authentication-and-authorization/faq"
REDIRECT_DOC = "https://developer.intuit.com/app/developer/qbo/docs/develop/authentication-and-authorization/set-redirect-uri"
OPENID_DOC = "https://developer.intuit.com/app/developer/qbo/docs/develop/authentication-and-authorization/openid-connect"
POLICY_BLOG = "https://blogs.a.intuit.com/2025/11/12/important-changes-to-refresh-token-policy"
PYTHON_CLIENT = "https://github.com/intuit/oauth-pythonclient/blob/master/intuitlib/client.py"

# FAQ_DOC: "Access tokens are valid for 3600 seconds (one hour)".
ACCESS_TOKEN_LIFETIME = timedelta(seconds=3600)
# OAUTH_DOC: the refresh token has "a rolling expiry of 100 days"; the token responses'
# x_refresh_token_expires_in is that remaining life (8640000 s in Intuit's SDK samples).
REFRESH_TOKEN_IDLE = timedelta(days=100)
# POLICY_BLOG: "All refresh tokens will now have a maximum validity period of five years."
REFRESH_TOKEN_HARD_CAP = timedelta(days=5 * 365)
# FAQ_DOC (and Intuit's SDK notes): the refresh token value changes every 24 hours -
# a refresh returns the same refresh token until it is a day old, then a new one.
# Whether the previous value keeps working for a while is not documented ("always store
# the latest refresh_token", OAUTH_DOC): the double lets it die at once, the strict case.
REFRESH_TOKEN_REPLACED_AFTER = timedelta(hours=24)
# Not documented: how long an authorization code lives. RFC 6749 §4.1.2 recommends at
# most 10 minutes; the double takes that, and single use.
CODE_LIFETIME = timedelta(minutes=10)
ISSUER_PATH = "/op/v1"
ACCOUNTING_SCOPE = "com.intuit.quickbooks.accounting"
# OPENID_DOC: openid, profile, email, phone, address besides the API scopes.
KNOWN_SCOPES = frozenset(
    {ACCOUNTING_SCOPE, "com.intuit.quickbooks.payment", "openid", "profile", "email", "phone",
     "address"}
)  # fmt: skip


class Environment(enum.Enum):
    """Which of an app's two sets of keys: each has its own redirect URIs (REDIRECT_DOC)."""

    PRODUCTION = "production"
    SANDBOX = "sandbox"


class RegistrationRefused(ValueError):  # noqa: N818 - reads as what the portal did
    """The developer portal would not accept this redirect URI for these keys."""


def check_redirect_uri(uri: str, environment: Environment) -> None:
    """Refuse a redirect URI the portal refuses for ``environment`` (REDIRECT_DOC, FAQ_DOC).

    Production: "can only redirect to URIs beginning with https. IP addresses aren't
    allowed." Sandbox: "You can add localhost (no HTTPS) as a URI for sandbox
    environments." Whether the portal takes 127.0.0.1 for sandbox keys is not documented
    (it names localhost): the double refuses it, the strict reading.
    """
    parts = urlsplit(uri)
    host = parts.hostname or ""
    try:
        ipaddress.ip_address(host)
        is_ip = True
    except ValueError:
        is_ip = False
    if environment is Environment.PRODUCTION:
        if parts.scheme != "https":
            raise RegistrationRefused(f"production redirect URIs must use https: {uri}")
        if is_ip or host == "localhost":
            raise RegistrationRefused(f"production redirect URIs need a host name: {uri}")
        return
    if parts.scheme == "https" and not is_ip:
        return
    if parts.scheme == "http" and host == "localhost":
        return
    raise RegistrationRefused(f"sandbox redirect URIs are https or http://localhost: {uri}")


@dataclass
class App:
    """One set of keys of an Intuit Developer app."""

    client_id: str
    client_secret: str
    environment: Environment
    redirect_uris: tuple[str, ...]


@dataclass
class User:
    """A QuickBooks user with one company (realm)."""

    username: str
    password: str
    email: str
    realm_id: str
    sub: str = field(default_factory=lambda: secrets.token_hex(16))


@dataclass
class Connection:
    """One authorization: the app's access to one company, from one login."""

    app: App
    user: User
    scopes: tuple[str, ...]
    authorized_at: datetime
    refresh_token: str
    refresh_issued_at: datetime
    refresh_last_used: datetime
    previous_refresh_tokens: list[str] = field(default_factory=list)
    access_tokens: dict[str, datetime] = field(default_factory=dict)  # token -> expiry
    revoked: bool = False

    @property
    def hard_end(self) -> datetime:
        """POLICY_BLOG: five years after the authorization at most."""
        return self.authorized_at + REFRESH_TOKEN_HARD_CAP


@dataclass
class PendingLogin:
    """An authorization request between the sign-in page and the redirect."""

    app: App
    redirect_uri: str
    state: str
    scopes: tuple[str, ...]
    nonce: str | None
    user: User | None = None


@dataclass
class IssuedCode:
    """An authorization code (single use)."""

    login: PendingLogin
    expires_at: datetime


class IntuitDouble:
    """The double's state and HTTP server. Start with :func:`start_intuit`."""

    def __init__(self) -> None:
        from joserfc.jwk import RSAKey

        self._lock = threading.Lock()
        self._offset = timedelta(0)
        self.apps: dict[str, App] = {}
        self.users: dict[str, User] = {}
        self.connections: list[Connection] = []
        self._pending: dict[str, PendingLogin] = {}
        self._codes: dict[str, IssuedCode] = {}
        #: (method, path, grant_type or None, status) of every call, for the tests.
        self.calls: list[tuple[str, str, str | None, int]] = []
        #: The query of every authorization request, as it arrived.
        self.authorize_requests: list[dict[str, str]] = []
        #: The raw body and content type of every revocation request.
        self.revocation_requests: list[tuple[str, bytes]] = []
        self._key = RSAKey.generate_key(2048, parameters={"kid": "double-1", "use": "sig"})
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # -- set-up and control by the tests ----------------------------------------------------
    @property
    def issuer(self) -> str:
        """The issuer as the ID tokens name it (Intuit: https://oauth.platform.intuit.com/op/v1)."""
        return self.base_url + ISSUER_PATH

    def now(self) -> datetime:
        """The double's clock: the wall clock moved by :meth:`advance`."""
        return datetime.now(UTC) + self._offset

    def advance(self, delta: timedelta) -> None:
        """Move the double's clock forward."""
        with self._lock:
            self._offset += delta

    def register_app(
        self,
        client_id: str,
        client_secret: str,
        environment: Environment,
        redirect_uris: tuple[str, ...],
    ) -> App:
        """Register keys and their redirect URIs, as the developer portal would (or refuse)."""
        for uri in redirect_uris:
            check_redirect_uri(uri, environment)
        app = App(client_id, client_secret, environment, redirect_uris)
        self.apps[client_id] = app
        return app

    def add_user(self, username: str, password: str, email: str, realm_id: str) -> User:
        """A user who signs in and connects the company ``realm_id``."""
        user = User(username, password, email, realm_id)
        self.users[username] = user
        return user

    def disconnect(self, realm_id: str) -> None:
        """The user disconnects the app in QuickBooks: every token of the company dies."""
        with self._lock:
            for connection in self.connections:
                if connection.user.realm_id == realm_id:
                    connection.revoked = True

    def connection_for(self, realm_id: str) -> Connection:
        """The latest connection to the company ``realm_id``."""
        return [c for c in self.connections if c.user.realm_id == realm_id][-1]

    def token_calls(self, grant_type: str) -> int:
        """How many token-endpoint calls of ``grant_type`` were answered."""
        return sum(1 for _, path, grant, _ in self.calls if grant == grant_type)

    def start(self) -> None:
        """Start serving."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()

    # -- the protocol -----------------------------------------------------------------------
    def _connection_by_refresh(self, token: str) -> Connection | None:
        for connection in self.connections:
            if connection.refresh_token == token:
                return connection
        return None

    def _connection_by_access(self, token: str) -> Connection | None:
        for connection in self.connections:
            if token in connection.access_tokens:
                return connection
        return None

    def _token_response(
        self, connection: Connection, *, with_id_token: str | None
    ) -> dict[str, Any]:
        now = self.now()
        access = secrets.token_urlsafe(48)
        connection.access_tokens[access] = now + ACCESS_TOKEN_LIFETIME
        remaining = min(REFRESH_TOKEN_IDLE, connection.hard_end - now)
        # OAUTH_DOC and Intuit's clients (PYTHON_CLIENT: `x_refresh_token_expires_in`):
        # a bearer token response is token_type, access_token, expires_in, refresh_token
        # and x_refresh_token_expires_in, plus id_token when openid was asked for. No
        # `scope` field is documented in it.
        body: dict[str, Any] = {
            "token_type": "bearer",
            "access_token": access,
            "expires_in": int(ACCESS_TOKEN_LIFETIME.total_seconds()),
            "refresh_token": connection.refresh_token,
            "x_refresh_token_expires_in": int(remaining.total_seconds()),
        }
        if with_id_token is not None:
            body["id_token"] = with_id_token
        return body

    def _id_token(self, login: PendingLogin) -> str:
        from joserfc import jwt

        assert login.user is not None
        wall = int(time.time())
        # OPENID_DOC: an RS256 ID token whose issuer is .../op/v1, audience the client id,
        # and `realmid` when the accounting scope was granted. No e-mail claim is listed:
        # the account comes from the userinfo endpoint.
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": [login.app.client_id],
            "sub": login.user.sub,
            "realmid": login.user.realm_id,
            "auth_time": wall,
            "iat": wall,
            "exp": wall + 3600,
        }
        if login.nonce is not None:
            # OpenID Connect Core §3.1.2.1 (Intuit is OpenID certified, OPENID_DOC).
            claims["nonce"] = login.nonce
        return jwt.encode({"alg": "RS256", "kid": "double-1"}, claims, self._key)

    def authorize(self, query: dict[str, str]) -> tuple[int, str, dict[str, str]]:
        """``GET /connect/oauth2``: check the request, then show the sign-in page."""
        self.authorize_requests.append(dict(query))
        # OAUTH_DOC, "Create an authorization request": client_id, scope, redirect_uri,
        # response_type=code and state are all required.
        app = self.apps.get(query.get("client_id", ""))
        if app is None:
            return _error_page("invalid_client", "unknown client_id")
        redirect_uri = query.get("redirect_uri", "")
        # REDIRECT_DOC: "The Intuit OAuth 2.0 Server can only redirect and send responses
        # to registered URIs" - of this set of keys (exact match).
        if redirect_uri not in app.redirect_uris:
            return _error_page("invalid_request", "redirect_uri is not registered for this app")
        if query.get("response_type") != "code":
            return _error_page("unsupported_response_type", "response_type must be code")
        if not query.get("state"):
            return _error_page("invalid_request", "state is required")
        scopes = tuple(query.get("scope", "").split())
        if not scopes or not set(scopes) <= KNOWN_SCOPES:
            return _error_page("invalid_scope", "unknown or missing scope")
        # Not documented: PKCE. The double ignores code_challenge (and later code_verifier),
        # as a server that does not implement RFC 7636 does.
        session = secrets.token_urlsafe(16)
        with self._lock:
            self._pending[session] = PendingLogin(
                app, redirect_uri, query["state"], scopes, query.get("nonce")
            )
        return 200, _login_page(session), {}

    def sign_in(self, form: dict[str, str]) -> tuple[int, str, dict[str, str]]:
        """The double's sign-in form: then the consent ("Connect") page."""
        login = self._pending.get(form.get("session", ""))
        if login is None:
            return _error_page("invalid_request", "no such login")
        user = self.users.get(form.get("username", ""))
        if user is None or user.password != form.get("password"):
            return 200, _login_page(form.get("session", ""), error="wrong user or password"), {}
        login.user = user
        return 200, _consent_page(form["session"], login.app.client_id), {}

    def consent(self, form: dict[str, str]) -> tuple[int, str, dict[str, str]]:
        """Approve or deny; redirect back with ``code``, ``state`` and ``realmId``."""
        with self._lock:
            login = self._pending.pop(form.get("session", ""), None)
        if login is None or login.user is None:
            return _error_page("invalid_request", "no such login")
        if form.get("decision") != "approve":
            params = {"error": "access_denied", "state": login.state}
        else:
            code = secrets.token_urlsafe(24)
            with self._lock:
                self._codes[code] = IssuedCode(login, self.now() + CODE_LIFETIME)
            # OAUTH_DOC: the redirect carries code, state and realmId (the company);
            # Intuit's Python client docs: "the callback URL has params for state,
            # auth_code and realm_id".
            params = {"code": code, "state": login.state, "realmId": login.user.realm_id}
        return 302, "", {"Location": f"{login.redirect_uri}?{urlencode(params)}"}

    def token(self, headers: Any, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """``POST /oauth2/v1/tokens/bearer``: the code exchange and the refresh grant."""
        # OAUTH_DOC: the client authenticates with "Authorization: Basic
        # base64(client_id:client_secret)"; the body is form-encoded.
        app = self._basic_client(headers)
        if app is None:
            return 401, {"error": "invalid_client"}
        grant_type = form.get("grant_type")
        now = self.now()
        with self._lock:
            if grant_type == "authorization_code":
                issued = self._codes.pop(form.get("code", ""), None)
                if issued is None or issued.expires_at < now or issued.login.app is not app:
                    return 400, {"error": "invalid_grant"}
                if form.get("redirect_uri") != issued.login.redirect_uri:
                    return 400, {"error": "invalid_grant"}
                login = issued.login
                assert login.user is not None
                connection = Connection(
                    app=app,
                    user=login.user,
                    scopes=login.scopes,
                    authorized_at=now,
                    refresh_token=_refresh_token(),
                    refresh_issued_at=now,
                    refresh_last_used=now,
                )
                self.connections.append(connection)
                id_token = self._id_token(login) if "openid" in login.scopes else None
                return 200, self._token_response(connection, with_id_token=id_token)
            if grant_type == "refresh_token":
                token = form.get("refresh_token", "")
                connection = self._connection_by_refresh(token)
                # Refused: unknown, replaced (FAQ_DOC), revoked or disconnected, unused
                # for 100 days (OAUTH_DOC), past the five-year cap (POLICY_BLOG). Intuit
                # answers 400 invalid_grant (its clients' documented error for a refresh
                # token "expired or revoked").
                if (
                    connection is None
                    or connection.app is not app
                    or connection.revoked
                    or now - connection.refresh_last_used > REFRESH_TOKEN_IDLE
                    or now >= connection.hard_end
                ):
                    return 400, {"error": "invalid_grant"}
                if now - connection.refresh_issued_at >= REFRESH_TOKEN_REPLACED_AFTER:
                    connection.previous_refresh_tokens.append(connection.refresh_token)
                    connection.refresh_token = _refresh_token()
                    connection.refresh_issued_at = now
                connection.refresh_last_used = now
                # Not documented: whether a refresh answer carries a new ID token. It
                # carries none here; tokenctl keeps the login's.
                return 200, self._token_response(connection, with_id_token=None)
        return 400, {"error": "unsupported_grant_type"}

    def revoke(self, headers: Any, content_type: str, raw: bytes) -> int:
        """``POST /v2/oauth2/tokens/revoke``: JSON ``{"token": ...}``, Basic client auth.

        OAUTH_DOC ("Revoke access"): Content-Type application/json, body {"token": ...}
        holding the refresh or the access token; PYTHON_CLIENT sends exactly that. 200 on
        success, 400 otherwise. Whether a form body (RFC 7009) is accepted is not
        documented: the double answers 400, as to any request it does not understand.
        Revoking removes the app's access to the company: every token of it dies.
        """
        self.revocation_requests.append((content_type, raw))
        app = self._basic_client(headers)
        if app is None:
            return 401
        if not content_type.startswith("application/json"):
            return 400
        try:
            body = json.loads(raw)
        except ValueError:
            return 400
        token = body.get("token") if isinstance(body, dict) else None
        if not isinstance(token, str):
            return 400
        with self._lock:
            connection = self._connection_by_refresh(token) or self._connection_by_access(token)
            if connection is None or connection.app is not app:
                return 400
            connection.revoked = True
        return 200

    def userinfo(self, headers: Any) -> tuple[int, dict[str, Any]]:
        """``GET /v1/openid_connect/userinfo`` with the access token (OPENID_DOC)."""
        auth = headers.get("Authorization", "")
        if not auth.lower().startswith("bearer "):
            return 401, {"error": "invalid_token"}
        token = auth.split(" ", 1)[1].strip()
        with self._lock:
            connection = self._connection_by_access(token)
            if (
                connection is None
                or connection.revoked
                or connection.access_tokens[token] <= self.now()
            ):
                return 401, {"error": "invalid_token"}
            user = connection.user
            scopes = connection.scopes
        if "openid" not in scopes:
            return 403, {"error": "insufficient_scope"}
        # OPENID_DOC: sub, plus email/emailVerified with the email scope and
        # givenName/familyName with profile (Intuit's own field names).
        info: dict[str, Any] = {"sub": user.sub}
        if "email" in scopes:
            info.update(email=user.email, emailVerified=True)
        if "profile" in scopes:
            info.update(givenName=user.username.title(), familyName="Example")
        return 200, info

    def jwks(self) -> dict[str, Any]:
        """The public signing keys (the jwks_uri of Intuit's discovery document)."""
        return {"keys": [self._key.as_dict(private=False)]}

    def _basic_client(self, headers: Any) -> App | None:
        auth = headers.get("Authorization", "")
        if not auth.startswith("Basic "):
            return None
        try:
            client_id, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
        except ValueError:
            return None
        from urllib.parse import unquote

        # RFC 6749 §2.3.1: each part is form-encoded before the Basic encoding.
        app = self.apps.get(unquote(client_id))
        if app is None or not secrets.compare_digest(app.client_secret, unquote(secret)):
            return None
        return app

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        double = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                return

            def _send(
                self, status: int, body: str | bytes, ctype: str, extra: dict[str, str]
            ) -> None:
                data = body.encode() if isinstance(body, str) else body
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Cache-Control", "no-store")
                for name, value in extra.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def _json(self, status: int, body: Any, grant: str | None = None) -> None:
                double.calls.append((self.command, self.path.split("?")[0], grant, status))
                self._send(status, json.dumps(body), "application/json", {})

            def _html(self, answer: tuple[int, str, dict[str, str]]) -> None:
                status, body, extra = answer
                double.calls.append((self.command, self.path.split("?")[0], None, status))
                self._send(status, body, "text/html; charset=utf-8", extra)

            def _body(self) -> bytes:
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length)

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                if parts.path == "/connect/oauth2":
                    self._html(double.authorize(query))
                elif parts.path == "/v1/openid_connect/userinfo":
                    self._json(*double.userinfo(self.headers))
                elif parts.path == ISSUER_PATH + "/jwks":
                    self._json(200, double.jwks())
                else:
                    # Intuit publishes its discovery document at developer.api.intuit.com/
                    # .well-known/openid_configuration, not under the issuer: a client
                    # looking under the issuer finds nothing, here as there.
                    self._json(404, {"error": "not_found"})

            def do_POST(self) -> None:
                path = urlsplit(self.path).path
                raw = self._body()
                ctype = self.headers.get("Content-Type", "")
                form = {k: v[0] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}
                if path == "/connect/oauth2/sign-in":
                    self._html(double.sign_in(form))
                elif path == "/connect/oauth2/consent":
                    self._html(double.consent(form))
                elif path == "/oauth2/v1/tokens/bearer":
                    status, body = double.token(self.headers, form)
                    self._json(status, body, form.get("grant_type"))
                elif path == "/v2/oauth2/tokens/revoke":
                    status = double.revoke(self.headers, ctype, raw)
                    self._json(status, {} if status == 200 else {"error": "invalid_request"})
                else:
                    self._json(404, {"error": "not_found"})

        return Handler


def _refresh_token() -> str:
    # Intuit's refresh tokens look like "RT1-…" (OAUTH_DOC samples); the format is opaque.
    return "RT1-" + secrets.token_urlsafe(32)


def _page(kind: str, inner: str) -> str:
    return (
        f'<!doctype html><html><head><meta charset="utf-8"><title>Intuit</title></head>'
        f'<body data-page="{kind}">{inner}</body></html>'
    )


def _login_page(session: str, error: str | None = None) -> str:
    problem = f'<p id="error">{html.escape(error)}</p>' if error else ""
    return _page(
        "login",
        f'{problem}<form method="post" action="/connect/oauth2/sign-in">'
        f'<input type="hidden" name="session" value="{html.escape(session)}">'
        '<input id="username" name="username"><input id="password" name="password" '
        'type="password"><button id="login-submit" type="submit">Sign in</button></form>',
    )


def _consent_page(session: str, client_id: str) -> str:
    hidden = f'<input type="hidden" name="session" value="{html.escape(session)}">'
    return _page(
        "consent",
        f"<p>Connect {html.escape(client_id)} to your QuickBooks company?</p>"
        f'<form method="post" action="/connect/oauth2/consent">{hidden}'
        '<button id="approve" name="decision" value="approve">Connect</button>'
        '<button id="deny" name="decision" value="deny">Cancel</button></form>',
    )


def _error_page(error: str, description: str) -> tuple[int, str, dict[str, str]]:
    inner = (
        f'<p id="error">{html.escape(error)}</p>'
        f'<p id="error_description">{html.escape(description)}</p>'
    )
    return 400, _page("error", inner), {}


def start_intuit() -> IntuitDouble:
    """Start a double on a free port of 127.0.0.1; stop it with :meth:`IntuitDouble.stop`."""
    double = IntuitDouble()
    double.start()
    return double


def running_intuit() -> Iterator[IntuitDouble]:
    """A fixture body: a started double, stopped afterwards."""
    double = start_intuit()
    try:
        yield double
    finally:
        double.stop()


def sign_in_without_browser(authorize_url: str, username: str, password: str) -> str:
    """Walk the sign-in and consent pages over plain HTTP; return the redirect's Location.

    The paste login's user: the browser would now land on the registered HTTPS URI,
    whose address the user copies. The redirect itself is not followed.
    """
    import re
    import urllib.error
    import urllib.request

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(authorize_url))
    with opener.open(authorize_url, timeout=10) as response:
        page = response.read().decode()
    session = re.search(r'name="session" value="([^"]+)"', page)
    assert session, page
    form = urlencode({"session": session.group(1), "username": username, "password": password})
    with opener.open(origin + "/connect/oauth2/sign-in", form.encode(), timeout=10) as response:
        page = response.read().decode()
    assert 'data-page="consent"' in page, page
    form = urlencode({"session": session.group(1), "decision": "approve"})
    try:
        opener.open(origin + "/connect/oauth2/consent", form.encode(), timeout=10)
    except urllib.error.HTTPError as redirect:
        if redirect.code == 302:
            return str(redirect.headers["Location"])
        raise
    raise AssertionError("the consent page did not redirect")
