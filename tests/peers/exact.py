"""A local double of Exact Online's OAuth 2.0 login and its ``current/Me`` call.

Only what Exact Online documents, or what its integrators report where Exact's own pages
are behind its knowledge base, each behaviour next to its source:

* [EXACT-OAUTH] Exact's OAuth developer steps (support.exactonline.com knowledge base,
  "OAuth: Developer steps", reached through https://start.exactonline.nl/docs/HlpRestAPIResources.aspx):
  authorization code flow at ``/api/oauth2/auth`` and ``/api/oauth2/token``; the client
  id and secret in the token request's body; an exact match with the app's registered
  redirect URI, which must be public HTTPS (no loopback address can be registered); no
  ``scope`` parameter (the app's rights are shown on the consent page); access tokens of
  600 seconds, ``expires_in`` sent as a *string* (``"600"``); ``force_login=1`` shows
  the login page even with a session.
* [NANGO] https://docs.nango.dev/integrations/all/exact-online: "Access Token refreshes
  are only possible in the last 30 seconds of the last one being valid, or of course
  when there is no valid Access Token anymore"; access tokens stay valid 10 minutes.
* [INVANTIVE-OLD] https://forums.invantive.com/t/exact-online-error-message-old-refresh-token-used/2903:
  the refresh token rotates; once the new one is used, the previous ones expire and
  Exact answers ``Old refresh token used.``; an unused refresh token lives 30 days; the
  authorization code lives 3 minutes and is single use.
* [INVANTIVE-LIMITS] https://forums.invantive.com/t/impact-exact-online-api-adjustments-july-1-2021/3507:
  at most 200 token-endpoint calls per app, user and day; at most one access token per
  9.5 minutes.
* [EXACT-ME] ``GET /api/v1/current/Me`` (Exact's REST API reference, "system/Me"): the
  signed-in user with ``CurrentDivision``, in the OData v2 envelope ``{"d": {"results":
  [...]}}``.

Where the sources give no wire format the double says so in a comment and answers in
OAuth's own terms (RFC 6749 section 5.2); tokenctl must not depend on such a text.
The status codes and texts of the two dead-refresh-token answers (401
``unauthorized_client`` "Old refresh token used." and 400 ``invalid_request`` "The
refresh token expired at ...") are the ones integrators quote from Exact
([INVANTIVE-OLD], issue #13 of this project).

The login pages carry ``data-page="login"`` / ``"consent"`` and the ids the Chromium
driver (tests/peers/browser_driver.py) fills in, like the OpenID peer's.
"""

from __future__ import annotations

import html
import http.server
import json
import secrets
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

ACCESS_SECONDS = 600  # [EXACT-OAUTH], [NANGO]
REFRESH_WINDOW_SECONDS = 30  # [NANGO]: refresh only in the last 30 s
REFRESH_IDLE_SECONDS = 30 * 24 * 3600  # [INVANTIVE-OLD]: 30 days unused
CODE_SECONDS = 180  # [INVANTIVE-OLD]: 3 minutes, single use
TOKEN_CALLS_PER_DAY = 200  # [INVANTIVE-LIMITS]


@dataclass
class ExactUser:
    """An Exact Online user of the double, with the division Me reports as current."""

    name: str
    password: str
    full_name: str
    email: str
    current_division: int


@dataclass
class _Grant:
    """One login's chain of tokens (one user, one app)."""

    user: ExactUser
    client_id: str
    refresh_token: str
    refresh_used_at: float
    access_token: str
    access_expires_at: float
    old_refresh_tokens: set[str] = field(default_factory=set)
    revoked: bool = False


@dataclass
class _Code:
    user: ExactUser
    client_id: str
    redirect_uri: str
    issued_at: float


class ExactDouble:
    """The double's state; :func:`serving` runs it on 127.0.0.1."""

    def __init__(self, client_id: str, client_secret: str, redirect_uri: str) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        #: The app's one registered redirect URI: matched exactly ([EXACT-OAUTH]).
        self.redirect_uri = redirect_uri
        self.users = {
            "alice": ExactUser(
                "alice", "alice-password", "Alice Example", "alice@example.test", 1234567
            ),
        }
        #: Seconds the double's clock runs ahead of the real one (a test moves it).
        self.clock_offset = 0.0
        #: Seconds an access token lives: Exact's 600, shortened by a test that needs
        #: a refresh to be possible right away.
        self.access_seconds = ACCESS_SECONDS
        self.base_url = ""
        self._lock = threading.Lock()
        self._codes: dict[str, _Code] = {}
        self._sessions: dict[str, ExactUser] = {}
        self._grants: list[_Grant] = []
        #: Token-endpoint calls per (client id, user name, day).
        self.token_calls: Counter[tuple[str, str, int]] = Counter()
        #: Every token-endpoint answer: (grant_type, status, error or "ok").
        self.token_answers: list[tuple[str, int, str]] = []
        #: Authorization requests seen (their query), for the tests to inspect.
        self.authorize_requests: list[dict[str, str]] = []

    def now(self) -> float:
        """The double's clock."""
        return time.time() + self.clock_offset

    # -- what the tests inspect or change ---------------------------------------------

    def grants(self, user: str = "alice") -> list[_Grant]:
        """The grants of ``user``, oldest first."""
        with self._lock:
            return [grant for grant in self._grants if grant.user.name == user]

    def revoke(self, user: str = "alice") -> None:
        """The user removes the app's access in Exact: every refresh token dies."""
        with self._lock:
            for grant in self._grants:
                if grant.user.name == user:
                    grant.revoked = True

    def refresh_accepted(self, refresh_token: str) -> bool:
        """Whether the double would accept ``refresh_token`` now (no call counted)."""
        with self._lock:
            return any(
                grant.refresh_token == refresh_token
                and not grant.revoked
                and self.now() - grant.refresh_used_at < REFRESH_IDLE_SECONDS
                for grant in self._grants
            )

    # -- the endpoints -----------------------------------------------------------------

    def authorize(
        self, query: dict[str, str], cookie_user: ExactUser | None
    ) -> tuple[int, dict[str, str], str]:
        """``GET /api/oauth2/auth``: the login page, the consent page, or the redirect."""
        self.authorize_requests.append(dict(query))
        if query.get("client_id") != self.client_id:
            return _page(400, "error", "Unknown client_id", "The app is not registered.")
        if query.get("redirect_uri") != self.redirect_uri:
            # [EXACT-OAUTH]: the redirect URI must match the registered one exactly.
            return _page(
                400,
                "error",
                "invalid_request",
                "The redirect_uri does not match the app's registered redirect URI.",
            )
        if query.get("response_type") != "code":
            return _page(400, "error", "unsupported_response_type", "Only code is supported.")
        if cookie_user is None or query.get("force_login") == "1":
            return _login_page(query)
        return _consent_page(query, cookie_user)

    def login(self, form: dict[str, str]) -> tuple[int, dict[str, str], str]:
        """``POST /api/oauth2/login``: the credentials, then the consent page."""
        user = self.users.get(form.get("username", ""))
        query = json.loads(form.get("query", "{}"))
        if user is None or not secrets.compare_digest(user.password, form.get("password", "")):
            return _login_page(query, error="Invalid user name or password")
        session = secrets.token_urlsafe(16)
        with self._lock:
            self._sessions[session] = user
        status, headers, body = _consent_page(query, user)
        headers["Set-Cookie"] = f"exact_session={session}; Path=/; HttpOnly"
        return status, headers, body

    def session_user(self, cookie_header: str | None) -> ExactUser | None:
        """The user of the session cookie, if any."""
        for part in (cookie_header or "").split(";"):
            name, _, value = part.strip().partition("=")
            if name == "exact_session":
                with self._lock:
                    return self._sessions.get(value)
        return None

    def consent(
        self, form: dict[str, str], user: ExactUser | None
    ) -> tuple[int, dict[str, str], str]:
        """``POST /api/oauth2/consent``: back to the registered redirect URI with a code."""
        query = json.loads(form.get("query", "{}"))
        if user is None:
            return _login_page(query)
        target = self.redirect_uri
        state = query.get("state")
        if form.get("decision") != "approve":
            params = {"error": "access_denied", **({"state": state} if state else {})}
        else:
            code = secrets.token_urlsafe(24)
            with self._lock:
                self._codes[code] = _Code(user, self.client_id, self.redirect_uri, self.now())
            params = {"code": code, **({"state": state} if state else {})}
        location = f"{target}?{urllib.parse.urlencode(params)}"
        return 302, {"Location": location}, ""

    def token(
        self, form: dict[str, str], basic: tuple[str, str] | None
    ) -> tuple[int, dict[str, Any]]:
        """``POST /api/oauth2/token``: the code exchange and the refresh."""
        grant_type = form.get("grant_type", "")
        status, body = self._token(grant_type, form, basic)
        self.token_answers.append((grant_type, status, str(body.get("error", "ok"))))
        return status, body

    def _token(
        self, grant_type: str, form: dict[str, str], basic: tuple[str, str] | None
    ) -> tuple[int, dict[str, Any]]:
        # [EXACT-OAUTH]: the client id and secret in the body; HTTP Basic is not documented.
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        if basic is not None or client_id != self.client_id or client_secret != self.client_secret:
            return 400, {"error": "invalid_client"}
        now = self.now()
        with self._lock:
            if grant_type == "authorization_code":
                code = self._codes.pop(form.get("code", ""), None)  # single use
                if code is None or now - code.issued_at > CODE_SECONDS:
                    return 400, {"error": "invalid_grant"}
                if form.get("redirect_uri") != code.redirect_uri:
                    return 400, {"error": "invalid_grant"}
                if not self._count_call(code.user, now):
                    return 429, _too_many()
                grant = _Grant(
                    user=code.user,
                    client_id=client_id,
                    refresh_token=secrets.token_urlsafe(32),
                    refresh_used_at=now,
                    access_token=secrets.token_urlsafe(48),
                    access_expires_at=now + self.access_seconds,
                )
                self._grants.append(grant)
                return 200, self._token_body(grant)
            if grant_type != "refresh_token":
                return 400, {"error": "unsupported_grant_type"}
            presented = form.get("refresh_token", "")
            grant = next(
                (
                    g
                    for g in self._grants
                    if presented == g.refresh_token or presented in g.old_refresh_tokens
                ),
                None,
            )
            if grant is None or grant.revoked:
                # Not documented for a revoked app; RFC 6749's answer.
                return 400, {"error": "invalid_grant"}
            if presented != grant.refresh_token:
                # [INVANTIVE-OLD]: a rotated-away refresh token.
                return 401, {
                    "error": "unauthorized_client",
                    "error_description": "Old refresh token used.",
                }
            if now - grant.refresh_used_at >= REFRESH_IDLE_SECONDS:
                expired = time.strftime(
                    "%m/%d/%Y %H:%M:%S", time.gmtime(grant.refresh_used_at + REFRESH_IDLE_SECONDS)
                )
                return 400, {
                    "error": "invalid_request",
                    "error_description": f"The refresh token expired at {expired}.",
                }
            if grant.access_expires_at - now > REFRESH_WINDOW_SECONDS:
                # [NANGO]: refused before the last 30 s. Exact's wire text is not
                # documented: OAuth's generic invalid_request, never a dead-token answer.
                return 400, {
                    "error": "invalid_request",
                    "error_description": "The current access token is still valid.",
                }
            if not self._count_call(grant.user, now):
                return 429, _too_many()
            grant.old_refresh_tokens.add(grant.refresh_token)
            grant.refresh_token = secrets.token_urlsafe(32)  # [INVANTIVE-OLD]: rotates
            grant.refresh_used_at = now
            grant.access_token = secrets.token_urlsafe(48)
            grant.access_expires_at = now + self.access_seconds
            return 200, self._token_body(grant)

    def _count_call(self, user: ExactUser, now: float) -> bool:
        key = (self.client_id, user.name, int(now // 86400))
        if self.token_calls[key] >= TOKEN_CALLS_PER_DAY:
            return False
        self.token_calls[key] += 1
        return True

    def _token_body(self, grant: _Grant) -> dict[str, Any]:
        # [EXACT-OAUTH]: expires_in is a string; no scope, no id token.
        return {
            "access_token": grant.access_token,
            "token_type": "bearer",
            "expires_in": str(self.access_seconds),
            "refresh_token": grant.refresh_token,
        }

    def me(self, authorization: str | None) -> tuple[int, dict[str, Any]]:
        """``GET /api/v1/current/Me`` ([EXACT-ME]) with a bearer access token."""
        scheme, _, presented = (authorization or "").partition(" ")
        now = self.now()
        with self._lock:
            grant = next(
                (
                    g
                    for g in self._grants
                    if scheme.lower() == "bearer" and g.access_token == presented
                ),
                None,
            )
            if grant is None or grant.revoked or grant.access_expires_at <= now:
                return 401, {"error": {"message": {"value": "Unauthorized"}}}
            user = grant.user
        return 200, {
            "d": {
                "results": [
                    {
                        "CurrentDivision": user.current_division,
                        "UserName": user.name,
                        "FullName": user.full_name,
                        "Email": user.email,
                    }
                ]
            }
        }


def _too_many() -> dict[str, Any]:
    # [INVANTIVE-LIMITS] gives the limit, not the answer's wire format.
    return {"error": "too_many_requests", "error_description": "Token call limit reached."}


def _page(status: int, page: str, title: str, text: str) -> tuple[int, dict[str, str], str]:
    body = (
        f"<!doctype html><html><head><title>{html.escape(title)}</title></head>"
        f'<body data-page="{page}"><h1 id="error">{html.escape(title)}</h1>'
        f'<p id="error_description">{html.escape(text)}</p></body></html>'
    )
    return status, {"Content-Type": "text/html; charset=utf-8"}, body


def _login_page(query: dict[str, str], error: str | None = None) -> tuple[int, dict[str, str], str]:
    hidden = html.escape(json.dumps(query), quote=True)
    shown = f'<p id="error">{html.escape(error)}</p>' if error else ""
    body = (
        "<!doctype html><html><head><title>Exact Online - Log in</title></head>"
        f'<body data-page="login">{shown}<form method="post" action="/api/oauth2/login">'
        f'<input type="hidden" name="query" value="{hidden}">'
        '<input id="username" name="username"><input id="password" name="password" type="password">'
        '<button id="login-submit" type="submit">Log in</button></form></body></html>'
    )
    return 200, {"Content-Type": "text/html; charset=utf-8"}, body


def _consent_page(query: dict[str, str], user: ExactUser) -> tuple[int, dict[str, str], str]:
    hidden = html.escape(json.dumps(query), quote=True)
    body = (
        "<!doctype html><html><head><title>Exact Online - Allow access</title></head>"
        f'<body data-page="consent"><p>Allow the app access as {html.escape(user.full_name)}?</p>'
        '<form method="post" action="/api/oauth2/consent">'
        f'<input type="hidden" name="query" value="{hidden}">'
        '<button id="approve" name="decision" value="approve">Allow</button>'
        '<button id="deny" name="decision" value="deny">Deny</button></form></body></html>'
    )
    return 200, {"Content-Type": "text/html; charset=utf-8"}, body


def _handler(double: ExactDouble) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            return

        def _form(self) -> dict[str, str]:
            length = int(self.headers.get("Content-Length") or 0)
            data = self.rfile.read(length).decode()
            return dict(urllib.parse.parse_qsl(data, keep_blank_values=True))

        def _send(self, status: int, headers: dict[str, str], body: str | bytes) -> None:
            payload = body.encode() if isinstance(body, str) else body
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(payload)

        def _json(self, status: int, body: dict[str, Any]) -> None:
            self._send(status, {"Content-Type": "application/json"}, json.dumps(body))

        def do_GET(self) -> None:
            parts = urllib.parse.urlsplit(self.path)
            query = dict(urllib.parse.parse_qsl(parts.query))
            if parts.path == "/api/oauth2/auth":
                user = double.session_user(self.headers.get("Cookie"))
                self._send(*double.authorize(query, user))
            elif parts.path == "/api/v1/current/Me":
                self._json(*double.me(self.headers.get("Authorization")))
            else:
                self._send(404, {"Content-Type": "text/plain"}, "not found")

        def do_POST(self) -> None:
            path = urllib.parse.urlsplit(self.path).path
            form = self._form()
            if path == "/api/oauth2/token":
                self._json(*double.token(form, _basic(self.headers.get("Authorization"))))
            elif path == "/api/oauth2/login":
                self._send(*double.login(form))
            elif path == "/api/oauth2/consent":
                user = double.session_user(self.headers.get("Cookie"))
                self._send(*double.consent(form, user))
            else:
                self._send(404, {"Content-Type": "text/plain"}, "not found")

    return Handler


def _basic(header: str | None) -> tuple[str, str] | None:
    import base64

    scheme, _, value = (header or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    user, _, password = base64.b64decode(value).decode().partition(":")
    return urllib.parse.unquote(user), urllib.parse.unquote(password)


@contextmanager
def serving(double: ExactDouble) -> Iterator[ExactDouble]:
    """Run ``double`` on 127.0.0.1 (a free port) until the block ends."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(double))
    server.daemon_threads = True
    double.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield double
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
