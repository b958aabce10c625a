"""A local double of Xero's OAuth 2.0 (identity.xero.com, login.xero.com) and ``/connections``.

It implements only what Xero documents; each behaviour cites its source. One HTTP server on
127.0.0.1 (a free port) stands in for the three Xero hosts, so a definitions.toml override
replaces ``https://login.xero.com``, ``https://identity.xero.com`` and
``https://api.xero.com`` with :attr:`XeroDouble.url`:

==========================================  ==============================================
``GET  /identity/connect/authorize``        login.xero.com: login and consent pages
``POST /connect/token``                     identity.xero.com: code and refresh grants
``POST /connect/revocation``                identity.xero.com: revoke a refresh token
``GET  /.well-known/openid-configuration``  identity.xero.com: discovery (+ ``/jwks``)
``GET  /connect/userinfo``                  identity.xero.com: the OpenID userinfo
``GET  /connections``                       api.xero.com: the tenants the login connected
==========================================  ==============================================

Sources (re-checked with the project's search tool):

* PKCE: https://developer.xero.com/documentation/oauth2/pkce-flow
* auth flow, tenants: https://developer.xero.com/documentation/oauth2/auth-flow
* lifetimes, grace period, wildcards: https://developer.xero.com/faq/oauth2
* scopes, offline_access: https://developer.xero.com/documentation/oauth2/scopes
* ``/connections`` shape: https://github.com/XeroAPI/Xero-OpenAPI (xero-identity.yaml)
* revocation: https://github.com/XeroAPI/xero-node/releases/tag/4.10.1

Where those are silent the double says so in a comment, and docs/providers/xero.md lists
it. The pages carry ``data-page`` ids (``login``, ``consent``, ``error``) and the form ids
of ``tests/peers/browser_driver.py``, so headless Chromium can sign in as a person would.
"""

from __future__ import annotations

import base64
import hashlib
import html
import http.server
import json
import secrets
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from typing import Any

# https://developer.xero.com/faq/oauth2: "What is the expiration for an access token? 30 minutes."
ACCESS_TOKEN_SECONDS = 30 * 60
# https://developer.xero.com/faq/oauth2: "you can retry refreshing your existing refresh token
# for a grace period of 30 minutes."
GRACE_SECONDS = 30 * 60
# https://developer.xero.com/faq/oauth2: "Unused refresh tokens expire after 60 days."
REFRESH_IDLE_SECONDS = 60 * 24 * 3600
# Docs re-checked here do not state the code's lifetime: the double uses 5 minutes.
CODE_SECONDS = 5 * 60
ID_TOKEN_SECONDS = 5 * 60
# https://developer.xero.com/documentation/oauth2/scopes: OpenID Connect and offline_access.
OPENID_SCOPES = ("openid", "profile", "email")
OFFLINE_ACCESS = "offline_access"


@dataclass
class XeroUser:
    """A Xero user and the organisations (tenants) they can connect."""

    password: str
    email: str
    given_name: str
    family_name: str
    tenants: list[dict[str, str]]
    user_id: str = field(default_factory=lambda: str(uuid.uuid4()))


@dataclass
class _Grant:
    """One completed authorization (an "auth event"): its tokens and connections."""

    user: str
    client_id: str
    scopes: tuple[str, ...]
    auth_event_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    revoked: bool = False


@dataclass
class _RefreshToken:
    grant: _Grant
    issued: float
    last_used: float | None = None
    replaced_at: float | None = None  # when a refresh with it returned a new one


@dataclass
class TokenCall:
    """What the double saw at its token endpoint (for the tests to assert on)."""

    grant_type: str
    outcome: str  # "issued", "grace" (an old refresh token inside the grace period), an error
    refresh_token: str | None = field(default=None, repr=False)
    lost: bool = False  # the answer was dropped, as if the network lost it


class XeroDouble:
    """The server; start with :func:`start_xero_double`, stop with :meth:`stop`."""

    def __init__(self) -> None:
        from joserfc.jwk import RSAKey

        self._lock = threading.Lock()
        self._key = RSAKey.generate_key(2048, parameters={"kid": "xero-double", "use": "sig"})
        self._clock_offset = 0.0
        self.clients: dict[str, list[str]] = {}  # client id -> registered redirect URIs
        self.users: dict[str, XeroUser] = {}
        self._transactions: dict[str, dict[str, str]] = {}
        self._codes: dict[str, dict[str, Any]] = {}
        self._access: dict[str, tuple[_Grant, float]] = {}
        self._refresh: dict[str, _RefreshToken] = {}
        self._lose_next_refresh = False
        self.token_calls: list[TokenCall] = []
        self.revocations: list[str] = []
        self.authorize_requests: list[dict[str, str]] = []
        double = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                double._get(self)

            def do_POST(self) -> None:
                double._post(self)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # -- the tests' controls ------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The base URL that replaces every Xero host."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def now(self) -> float:
        """The double's clock: the wall clock plus what :meth:`advance` added."""
        return time.time() + self._clock_offset

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass for the double (tokenctl's own clock is not touched)."""
        with self._lock:
            self._clock_offset += seconds

    def register_client(self, client_id: str, redirect_uris: list[str]) -> None:
        """An "Auth Code with PKCE" app: a client id, no secret, its exact redirect URIs."""
        self.clients[client_id] = list(redirect_uris)

    def add_user(self, name: str, user: XeroUser) -> None:
        """A user who can sign in with ``name`` and ``user.password``."""
        self.users[name] = user

    def lose_next_refresh_answer(self) -> None:
        """The next refresh is carried out, but its answer never reaches the client."""
        self._lose_next_refresh = True

    def disconnect(self, user: str) -> None:
        """The user removes the app's connections in Xero: every grant of theirs is revoked."""
        with self._lock:
            for token in self._refresh.values():
                if token.grant.user == user:
                    token.grant.revoked = True

    def refresh_token_state(self, refresh_token: str) -> str:
        """``current``, ``grace``, ``dead`` or ``unknown``, by the double's clock."""
        with self._lock:
            token = self._refresh.get(refresh_token)
            return "unknown" if token is None else self._state(token)

    def live_grants(self, user: str) -> list[str]:
        """Auth event ids of ``user``'s grants that are not revoked."""
        with self._lock:
            return sorted(
                {
                    t.grant.auth_event_id
                    for t in self._refresh.values()
                    if t.grant.user == user and not t.grant.revoked
                }
            )

    def start(self) -> XeroDouble:
        """Serve in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> XeroDouble:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- a browser over plain HTTP (for the in-process tests) ---------------------------------

    def browser_login(
        self, url: str, user: str, password: str, *, approve: bool = True
    ) -> tuple[int, str]:
        """Sign in and consent like a person; returns the status and the final location.

        The location is the redirect to the app (not followed), or the error page's text.
        """
        status, body, _ = _http("GET", url)
        if status != 200 or 'data-page="login"' not in body:
            return status, body
        tx = _hidden(body, "tx")
        status, body, _ = _http(
            "POST", f"{self.url}/identity/login", {"tx": tx, "username": user, "password": password}
        )
        if status != 200 or 'data-page="consent"' not in body:
            return status, body
        decision = "approve" if approve else "deny"
        status, _body, location = _http(
            "POST", f"{self.url}/identity/consent", {"tx": tx, "decision": decision}
        )
        return status, location or _body

    # -- HTTP ---------------------------------------------------------------------------------

    def _get(self, handler: http.server.BaseHTTPRequestHandler) -> None:
        parts = urllib.parse.urlsplit(handler.path)
        query = {k: v[0] for k, v in urllib.parse.parse_qs(parts.query).items()}
        if parts.path == "/identity/connect/authorize":
            self._authorize(handler, query)
        elif parts.path == "/.well-known/openid-configuration":
            _json(handler, 200, self._discovery())
        elif parts.path == "/.well-known/openid-configuration/jwks":
            _json(handler, 200, {"keys": [self._key.as_dict(private=False)]})
        elif parts.path == "/connections":
            self._connections(handler, query)
        elif parts.path == "/connect/userinfo":
            self._userinfo(handler)
        else:
            _json(handler, 404, {"error": "not found"})

    def _post(self, handler: http.server.BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length).decode()
        form = {k: v[0] for k, v in urllib.parse.parse_qs(raw).items()}
        path = urllib.parse.urlsplit(handler.path).path
        if path == "/identity/login":
            self._login(handler, form)
        elif path == "/identity/consent":
            self._consent(handler, form)
        elif path == "/connect/token":
            self._token(handler, form)
        elif path == "/connect/revocation":
            self._revoke(handler, form)
        else:
            _json(handler, 404, {"error": "not found"})

    def _discovery(self) -> dict[str, Any]:
        # Xero publishes https://identity.xero.com/.well-known/openid-configuration (named in
        # the built-in's setup); its exact content is not in the docs re-checked here. The
        # double lists the endpoints the docs name, under the one host of the double.
        # It does not claim authorization_response_iss_parameter_supported: nothing in
        # Xero's docs says its callback carries `iss` (RFC 9207).
        return {
            "issuer": self.url,
            "authorization_endpoint": f"{self.url}/identity/connect/authorize",
            "token_endpoint": f"{self.url}/connect/token",
            "revocation_endpoint": f"{self.url}/connect/revocation",
            "userinfo_endpoint": f"{self.url}/connect/userinfo",
            "jwks_uri": f"{self.url}/.well-known/openid-configuration/jwks",
            "scopes_supported": [*OPENID_SCOPES, OFFLINE_ACCESS],
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            # pkce-flow: code_challenge_method=S256.
            "code_challenge_methods_supported": ["S256"],
            "id_token_signing_alg_values_supported": ["RS256"],
        }

    def _authorize(
        self, handler: http.server.BaseHTTPRequestHandler, query: dict[str, str]
    ) -> None:
        self.authorize_requests.append(dict(query))
        client = query.get("client_id", "")
        redirect_uri = query.get("redirect_uri", "")
        # auth-flow: "you will be redirected to the main Xero dashboard after logging in if
        # there is a problem with one the parameters ... Check that your redirect_uri matches
        # the redirect URI saved against your app". Xero never returns to an unregistered URI;
        # the double shows an error page instead of its dashboard.
        if client not in self.clients:
            _error_page(handler, "unauthorized_client", "Unknown client or client not enabled")
            return
        # faq/oauth2: "The use of wildcards in redirect URI is not supported" and the URI must
        # be absolute; pkce-flow: "All redirect URIs must be https with the exception of
        # localhost". So the URI must equal a registered one, port included.
        if redirect_uri not in self.clients[client]:
            _error_page(handler, "invalid_request", "Invalid redirect_uri")
            return
        if query.get("response_type") != "code":
            _error_page(handler, "unsupported_response_type", "response_type must be code")
            return
        # pkce-flow: code_challenge and code_challenge_method=S256 are passed.
        if not query.get("code_challenge") or query.get("code_challenge_method") != "S256":
            _error_page(handler, "invalid_request", "code challenge required")
            return
        # auth-flow / scopes: "The scope parameter is a space-separated list of OAuth scopes".
        if "," in query.get("scope", "") or not query.get("scope", "").split():
            _error_page(handler, "invalid_scope", "Invalid scope")
            return
        tx = secrets.token_urlsafe(16)
        self._transactions[tx] = dict(query)
        _page(handler, 200, "login", "Log in to Xero", _login_form(tx, ""))

    def _login(self, handler: http.server.BaseHTTPRequestHandler, form: dict[str, str]) -> None:
        tx = form.get("tx", "")
        if tx not in self._transactions:
            _error_page(handler, "invalid_request", "This login has expired")
            return
        user = self.users.get(form.get("username", ""))
        if user is None or not secrets.compare_digest(user.password, form.get("password", "")):
            _page(
                handler, 200, "login", "Log in to Xero", _login_form(tx, "Wrong email or password")
            )
            return
        self._transactions[tx]["_user"] = form["username"]
        scopes = self._transactions[tx]["scope"].split()
        organisations = "".join(f"<li>{html.escape(t['tenantName'])}</li>" for t in user.tenants)
        body = (
            f"<p>Allow <strong>{html.escape(self._transactions[tx]['client_id'])}</strong>"
            " to access:</p><ul>"
            + "".join(f"<li>{html.escape(s)}</li>" for s in scopes)
            + f"</ul><p>Organisations:</p><ul id='organisations'>{organisations}</ul>"
            f'<form method="post" action="/identity/consent"><input type="hidden" name="tx" '
            f'value="{html.escape(tx)}">'
            '<button id="approve" name="decision" value="approve">Allow access</button>'
            '<button id="deny" name="decision" value="deny">Cancel</button></form>'
        )
        _page(handler, 200, "consent", "Allow access", body)

    def _consent(self, handler: http.server.BaseHTTPRequestHandler, form: dict[str, str]) -> None:
        request = self._transactions.pop(form.get("tx", ""), None)
        if request is None or "_user" not in request:
            _error_page(handler, "invalid_request", "This login has expired")
            return
        redirect = request["redirect_uri"]
        state = {"state": request["state"]} if "state" in request else {}
        if form.get("decision") != "approve":
            query = urllib.parse.urlencode({"error": "access_denied", **state})
            _redirect(handler, f"{redirect}?{query}")
            return
        code = secrets.token_urlsafe(32)
        with self._lock:
            self._codes[code] = {**request, "issued": self.now()}
        # auth-flow: the user returns to the redirect URI with the code and the state.
        _redirect(handler, f"{redirect}?{urllib.parse.urlencode({'code': code, **state})}")

    def _token(self, handler: http.server.BaseHTTPRequestHandler, form: dict[str, str]) -> None:
        grant_type = form.get("grant_type", "")
        # pkce-flow: the PKCE app sends client_id in the body and has no client secret.
        client_id = form.get("client_id")
        if client_id not in self.clients or "authorization" in {k.lower() for k in handler.headers}:
            self.token_calls.append(TokenCall(grant_type, "invalid_client"))
            _json(handler, 400, {"error": "invalid_client"})
            return
        if grant_type == "authorization_code":
            self._code_grant(handler, form, client_id)
        elif grant_type == "refresh_token":
            self._refresh_grant(handler, form)
        else:
            self.token_calls.append(TokenCall(grant_type, "unsupported_grant_type"))
            _json(handler, 400, {"error": "unsupported_grant_type"})

    def _code_grant(
        self, handler: http.server.BaseHTTPRequestHandler, form: dict[str, str], client_id: str
    ) -> None:
        with self._lock:
            request = self._codes.pop(form.get("code", ""), None)  # single use
        verifier = form.get("code_verifier", "")
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
        if (
            request is None
            or self.now() - request["issued"] > CODE_SECONDS
            or request["client_id"] != client_id
            or request["redirect_uri"] != form.get("redirect_uri")
            or challenge.rstrip(b"=").decode() != request["code_challenge"]
        ):
            self.token_calls.append(TokenCall("authorization_code", "invalid_grant"))
            _json(handler, 400, {"error": "invalid_grant"})
            return
        grant = _Grant(request["_user"], client_id, tuple(request["scope"].split()))
        answer = self._issue(grant)
        if "openid" in grant.scopes:
            answer["id_token"] = self._id_token(grant, request.get("nonce"))
        self.token_calls.append(TokenCall("authorization_code", "issued"))
        _json(handler, 200, answer)

    def _refresh_grant(
        self, handler: http.server.BaseHTTPRequestHandler, form: dict[str, str]
    ) -> None:
        presented = form.get("refresh_token", "")
        with self._lock:
            token = self._refresh.get(presented)
            state = "unknown" if token is None else self._state(token)
        if token is None or state == "dead":
            # A refused refresh token: 400 invalid_grant (community.xero.com/developer/
            # discussion/127920775, Xero staff: "If you receive a Invalid Grant Error, the most
            # likely cause will be that the Refresh token you're using is either invalid,
            # expired or has previously been used outside of the 30 minute grace period").
            self.token_calls.append(TokenCall("refresh_token", "invalid_grant", presented))
            _json(handler, 400, {"error": "invalid_grant"})
            return
        now = self.now()
        with self._lock:
            token.last_used = now
            if token.replaced_at is None:
                token.replaced_at = now  # rotation: the grace period starts now
        # faq/oauth2: "When you perform a token refresh, you should replace your existing
        # refresh token with the new one returned in the response." What happens to the
        # first new refresh token when the old one is retried in the grace period is not
        # documented: the double keeps it valid too.
        answer = self._issue(token.grant)
        lost, self._lose_next_refresh = self._lose_next_refresh, False
        outcome = "grace" if state == "grace" else "issued"
        self.token_calls.append(TokenCall("refresh_token", outcome, presented, lost=lost))
        if lost:
            handler.close_connection = True  # no answer at all: the connection just ends
            return
        _json(handler, 200, answer)

    def _state(self, token: _RefreshToken) -> str:
        now = self.now()
        if token.grant.revoked:
            return "dead"
        if now - (token.last_used or token.issued) > REFRESH_IDLE_SECONDS:
            return "dead"
        if token.replaced_at is None:
            return "current"
        return "grace" if now - token.replaced_at <= GRACE_SECONDS else "dead"

    def _issue(self, grant: _Grant) -> dict[str, Any]:
        access = secrets.token_urlsafe(48)
        now = self.now()
        answer: dict[str, Any] = {
            "access_token": access,
            "expires_in": ACCESS_TOKEN_SECONDS,
            "token_type": "Bearer",
            "scope": " ".join(grant.scopes),
        }
        with self._lock:
            self._access[access] = (grant, now + ACCESS_TOKEN_SECONDS)
            # scopes: "To get a refresh token, you must request the offline_access scope."
            if OFFLINE_ACCESS in grant.scopes:
                refresh = secrets.token_urlsafe(48)
                self._refresh[refresh] = _RefreshToken(grant, now)
                answer["refresh_token"] = refresh
        return answer

    def _id_token(self, grant: _Grant, nonce: str | None) -> str:
        from joserfc import jwt

        user = self.users[grant.user]
        # The wall clock, not self.now(): advance() stands for time passing at Xero's token
        # store, while tokenctl checks the id token's times against its own clock.
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.url,
            "aud": grant.client_id,
            "sub": user.user_id,
            "iat": now,
            "nbf": now,
            "exp": now + ID_TOKEN_SECONDS,
            "auth_time": now,
            "xero_userid": user.user_id,
        }
        if nonce:
            claims["nonce"] = nonce
        if "email" in grant.scopes:
            claims.update(email=user.email, preferred_username=user.email)
        if "profile" in grant.scopes:
            claims.update(
                given_name=user.given_name,
                family_name=user.family_name,
                name=f"{user.given_name} {user.family_name}",
            )
        return jwt.encode({"alg": "RS256", "kid": "xero-double"}, claims, self._key)

    def _revoke(self, handler: http.server.BaseHTTPRequestHandler, form: dict[str, str]) -> None:
        if form.get("client_id") not in self.clients:
            _json(handler, 400, {"error": "invalid_client"})
            return
        presented = form.get("token", "")
        self.revocations.append(presented)
        with self._lock:
            token = self._refresh.get(presented)
            if token is not None:
                # xero-node 4.10.1: revokeToken "revokes a user's refresh token and removes all
                # their connections to your app". The double ends the whole grant.
                token.grant.revoked = True
        handler.send_response(200)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    def _bearer(self, handler: http.server.BaseHTTPRequestHandler) -> _Grant | None:
        auth = handler.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            return None
        with self._lock:
            entry = self._access.get(auth[len("Bearer ") :])
        if entry is None:
            return None
        grant, expires = entry
        if grant.revoked or self.now() > expires:
            return None
        return grant

    def _connections(
        self, handler: http.server.BaseHTTPRequestHandler, query: dict[str, str]
    ) -> None:
        grant = self._bearer(handler)
        if grant is None:
            # The 401 body is not documented in what was re-checked; a small problem object.
            _json(handler, 401, {"Title": "Unauthorized", "Status": 401})
            return
        # Xero-OpenAPI xero-identity.yaml: GET /connections lists the connections, each with
        # id, authEventId, tenantId, tenantType, tenantName, createdDateUtc, updatedDateUtc;
        # `authEventId` filters. The double connects every tenant of the user at consent.
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S.0000000", time.gmtime(self.now()))
        listing = [
            {
                "id": str(uuid.uuid5(uuid.NAMESPACE_URL, grant.auth_event_id + t["tenantId"])),
                "authEventId": grant.auth_event_id,
                "tenantId": t["tenantId"],
                "tenantType": t.get("tenantType", "ORGANISATION"),
                "tenantName": t["tenantName"],
                "createdDateUtc": stamp,
                "updatedDateUtc": stamp,
            }
            for t in self.users[grant.user].tenants
        ]
        wanted = query.get("authEventId")
        _json(handler, 200, [c for c in listing if wanted in (None, c["authEventId"])])

    def _userinfo(self, handler: http.server.BaseHTTPRequestHandler) -> None:
        grant = self._bearer(handler)
        if grant is None:
            _json(handler, 401, {"error": "invalid_token"})
            return
        user = self.users[grant.user]
        _json(handler, 200, {"sub": user.user_id, "email": user.email})


def start_xero_double() -> XeroDouble:
    """A started double (no clients or users yet: register them)."""
    return XeroDouble().start()


# -- small HTTP helpers ------------------------------------------------------------------------


def _json(handler: http.server.BaseHTTPRequestHandler, status: int, body: Any) -> None:
    data = json.dumps(body).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json; charset=utf-8")
    handler.send_header("Content-Length", str(len(data)))
    handler.send_header("Cache-Control", "no-store")
    handler.end_headers()
    handler.wfile.write(data)


def _page(
    handler: http.server.BaseHTTPRequestHandler, status: int, page_id: str, title: str, body: str
) -> None:
    text = (
        f'<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f'</head><body data-page="{page_id}"><h1>{html.escape(title)}</h1>{body}</body></html>'
    )
    data = text.encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "text/html; charset=utf-8")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


def _error_page(handler: http.server.BaseHTTPRequestHandler, error: str, description: str) -> None:
    body = (
        f'<p id="error">{html.escape(error)}</p>'
        f'<p id="error_description">{html.escape(description)}</p>'
    )
    _page(handler, 400, "error", "Sorry, something went wrong", body)


def _redirect(handler: http.server.BaseHTTPRequestHandler, location: str) -> None:
    handler.send_response(302)
    handler.send_header("Location", location)
    handler.send_header("Content-Length", "0")
    handler.end_headers()


def _login_form(tx: str, error: str) -> str:
    shown = f'<p id="error">{html.escape(error)}</p>' if error else ""
    return (
        f'{shown}<form method="post" action="/identity/login">'
        f'<input type="hidden" name="tx" value="{html.escape(tx)}">'
        '<input id="username" name="username" type="text">'
        '<input id="password" name="password" type="password">'
        '<button id="login-submit" type="submit">Log in</button></form>'
    )


def _hidden(body: str, name: str) -> str:
    marker = f'name="{name}" value="'
    start = body.index(marker) + len(marker)
    return html.unescape(body[start : body.index('"', start)])


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _http(method: str, url: str, form: dict[str, str] | None = None) -> tuple[int, str, str | None]:
    """One request without following redirects: status, body, Location."""
    data = urllib.parse.urlencode(form).encode() if form is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=10) as response:
            return response.status, response.read().decode(), response.headers.get("Location")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(), error.headers.get("Location")
