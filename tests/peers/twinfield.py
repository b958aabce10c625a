"""A local double of Twinfield's (Wolters Kluwer) OpenID Connect login.

A small HTTP server on 127.0.0.1 (free port) that answers the four endpoints Twinfield
documents under ``/auth/authentication/connect/`` — ``authorize``, ``token``,
``userinfo`` and ``accesstokenvalidation?token=`` — as Wolters Kluwer's documentation
describes them, and nothing more. Each behaviour cites its source; where the
documentation is silent the comment says so (and docs/providers/twinfield.md lists it).

Sources (cited below by their short names):

* [OIDC]  https://developers.twinfield.com/documentation/api/authentication/openid-connect-auth
  (endpoints, scopes; ``twf.user`` needs ``openid``)
* [AUTHZ] https://wktaaeu.my.site.com/nlcommunity/articles/en_US/Knowledge/Setting-up-OAuth-2-0-Request-an-authorization-code
  (the six authorization parameters, nonce among them; code flow clients use
  ``response_type=code`` only)
* [RT]    https://wktaaeu.my.site.com/nlcommunity/articles/en_US/Knowledge/Request-a-refresh-token
  (code exchange; refresh token valid 25 years, access token 1 hour)
* [AT]    https://wktaaeu.my.site.com/nlcommunity/articles/en_US/Knowledge/Request-an-access-token
  (refresh grant; its answer: access_token, expires_in 3600, token_type, refresh_token)
* [AUTH]  https://wktaaeu.my.site.com/nlcommunity/articles/en_US/Knowledge/Setting-up-OAuth-2-0-How-to-create-an-authorization-string
  (client authentication: HTTP Basic of ``client_id:client_secret``)
* [CLUSTER] https://wktaaeu.my.site.com/nlcommunity/articles/en_US/Knowledge/Setting-up-OAuth-2-0-Which-endpoint-do-I-need-for-my-request
  (``accesstokenvalidation``: GET, Authorization string, ``token`` parameter; a flat JSON
  answer whose keys include ``twf.clusterUrl``)

Use::

    with start_twinfield() as twf:
        twf.base_url          # http://127.0.0.1:PORT, stands for https://login.twinfield.com
        twf.revoke("jdevries")  # the user withdrew the app's access: refresh -> invalid_grant
"""

from __future__ import annotations

import base64
import html
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

#: Where Twinfield's OpenID Connect endpoints live under the host [OIDC].
BASE_PATH = "/auth/authentication"
CLIENT_ID = "tokenctl-twf"
CLIENT_SECRET = "tokenctl-twf-secret"
USER = "jdevries"
PASSWORD = "jdevries-password"
#: A cluster host of the kind [CLUSTER] and "Send a request" (accounting2.twinfield.com) name.
DEFAULT_CLUSTER = "https://accounting2.twinfield.com"
SCOPES = ("openid", "twf.user", "twf.organisation", "twf.organisationUser", "offline_access")
ACCESS_TOKEN_SECONDS = 3600  # [RT], [AT]: "Access tokens are valid for only 1 hour"


@dataclass
class _Grant:
    """One user's consent to the client: its refresh token and the access tokens it issued."""

    user: str
    scopes: tuple[str, ...]
    refresh_token: str
    nonce: str
    auth_time: int
    revoked: bool = False
    access_tokens: dict[str, float] = field(default_factory=dict)  # token -> expiry (epoch)


@dataclass
class _Pending:
    """An authorization request between the login page and the consent."""

    redirect_uri: str
    state: str | None
    nonce: str
    scopes: tuple[str, ...]
    user: str | None = None


class TwinfieldDouble:
    """The running double; see the module docstring."""

    def __init__(self, redirect_uris: tuple[str, ...]) -> None:
        from joserfc.jwk import RSAKey

        self.redirect_uris = set(redirect_uris)
        self.cluster_url = DEFAULT_CLUSTER
        self.key = RSAKey.generate_key(2048, parameters={"kid": "twf-1", "use": "sig"})
        self.users = {
            USER: {
                "password": PASSWORD,
                "sub": base64.b64encode(b'{"MemberId":"0001","Organisation":"ACME"}').decode(),
                "twf.id": "5c3f1e0a-0000-4000-8000-000000000001",
                "twf.organisationUserCode": "JDEVRIES",
                "twf.organisationId": "0f7d2b1c-0000-4000-8000-00000000acme",
            }
        }
        self.grants: list[_Grant] = []
        self.pending: dict[str, _Pending] = {}
        self.codes: dict[str, tuple[_Pending, float]] = {}
        #: Every request as (method, path, query, authorization header present).
        self.requests: list[tuple[str, str, dict[str, str], bool]] = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    # -- for the tests --------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """What stands for ``https://login.twinfield.com``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def issuer(self) -> str:
        """The ``iss`` of Twinfield's tokens ([CLUSTER]'s example answer)."""
        return self.base_url + BASE_PATH

    def revoke(self, user: str) -> None:
        """The user withdrew the app's access: its tokens no longer work."""
        with self.lock:
            for grant in self.grants:
                if grant.user == user:
                    grant.revoked = True

    def expire_access_tokens(self) -> None:
        """Let every access token issued so far run out (as an hour later)."""
        with self.lock:
            for grant in self.grants:
                for token in grant.access_tokens:
                    grant.access_tokens[token] = 0.0

    def calls(self, path: str) -> list[dict[str, str]]:
        """The queries of the requests made to ``connect/PATH`` so far."""
        wanted = f"{BASE_PATH}/connect/{path}"
        return [query for _m, p, query, _a in self.requests if p == wanted]

    def start(self) -> TwinfieldDouble:
        """Serve in a thread."""
        self.thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> TwinfieldDouble:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- behaviour ------------------------------------------------------------------

    def client_ok(self, header: str | None) -> bool:
        """[AUTH]: ``Authorization: Basic base64(client_id:client_secret)``."""
        expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        return header == f"Basic {expected}"

    def issue_access_token(self, grant: _Grant) -> str:
        # Twinfield's access tokens look opaque in [AT]'s example ("25a62e###66f52"), and
        # [CLUSTER] validates them at the server: so opaque here, looked up on validation.
        token = secrets.token_hex(24)
        grant.access_tokens[token] = time.time() + ACCESS_TOKEN_SECONDS
        return token

    def grant_of_access_token(self, token: str) -> _Grant | None:
        for grant in self.grants:
            expiry = grant.access_tokens.get(token)
            if expiry is not None and not grant.revoked and expiry > time.time():
                return grant
        return None

    def id_token(self, grant: _Grant) -> str:
        from joserfc import jwt

        profile = self.users[grant.user]
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": CLIENT_ID,
            "sub": profile["sub"],
            "iat": now,
            "nbf": now,
            "exp": now + 300,  # undocumented; a few minutes, as usual for id tokens
            "auth_time": grant.auth_time,
            # OpenID Connect Core §3.1.3.6: the nonce of the request, which [AUTHZ] requires.
            "nonce": grant.nonce,
        }
        if "twf.user" in grant.scopes:
            # [OIDC]: the twf.user scope (an identity scope) carries these claims.
            claims.update(
                {
                    k: profile[k]
                    for k in ("twf.id", "twf.organisationUserCode", "twf.organisationId")
                }
            )
        return jwt.encode({"alg": "RS256", "kid": "twf-1"}, claims, self.key)

    def validation_answer(self, grant: _Grant, token: str) -> dict[str, Any]:
        """[CLUSTER]'s example answer: flat keys, times as strings, ``twf.clusterUrl``."""
        profile = self.users[grant.user]
        expiry = int(grant.access_tokens[token])
        return {
            "aud": f"{self.issuer}/resources",
            "iss": self.issuer,
            "nbf": str(expiry - ACCESS_TOKEN_SECONDS),
            "exp": str(expiry),
            "client_id": CLIENT_ID,
            "scope": list(grant.scopes),
            "sub": profile["sub"],
            "auth_time": str(grant.auth_time),
            "idp": "AAA",
            "amr": "external",
            "twf.organisationUserCode": profile["twf.organisationUserCode"],
            # The stored copy of [CLUSTER]'s example breaks off after the user code; the
            # article and every client of it read the cluster from "twf.clusterUrl".
            "twf.clusterUrl": self.cluster_url,
        }


def _page(page_id: str, title: str, body: str) -> bytes:
    # The login and consent pages are the double's own (the real ones are Wolters Kluwer
    # Account pages); data-page and the ids are what tests/peers/browser_driver.py answers.
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>"
        f"{html.escape(title)}</title></head><body data-page='{page_id}'>{body}</body></html>"
    ).encode()


def _error_page(error: str, description: str) -> bytes:
    return _page(
        "error",
        "Error",
        f"<h1>Error</h1><p id='error'>{html.escape(error)}</p>"
        f"<p id='error_description'>{html.escape(description)}</p>",
    )


def _handler(double: TwinfieldDouble) -> type[BaseHTTPRequestHandler]:
    connect = f"{BASE_PATH}/connect"

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            return

        # -- plumbing

        def _send(self, status: int, body: bytes, content_type: str, **headers: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            for name, value in headers.items():
                self.send_header(name.replace("_", "-"), value)
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, data: Any) -> None:
            self._send(status, json.dumps(data).encode(), "application/json; charset=utf-8")

        def _html(self, status: int, body: bytes) -> None:
            self._send(status, body, "text/html; charset=utf-8")

        def _redirect(self, url: str) -> None:
            self._send(302, b"", "text/plain", Location=url)

        def _form(self) -> dict[str, str]:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode() if length else ""
            return {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}

        def _record(self, query: dict[str, str]) -> None:
            path = urlsplit(self.path).path
            with double.lock:
                double.requests.append((self.command, path, query, "Authorization" in self.headers))

        # -- routes

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
            self._record({k: v for k, v in query.items() if k != "token"})
            if parts.path == f"{BASE_PATH}/.well-known/openid-configuration":
                self._discovery()
            elif parts.path == f"{BASE_PATH}/.well-known/jwks":
                self._json(200, {"keys": [double.key.as_dict(private=False)]})
            elif parts.path == f"{connect}/authorize":
                self._authorize(query)
            elif parts.path == f"{connect}/userinfo":
                self._userinfo()
            elif parts.path == f"{connect}/accesstokenvalidation":
                self._validation(query)
            else:
                self._html(404, _error_page("not_found", parts.path))

        def do_POST(self) -> None:
            parts = urlsplit(self.path)
            form = self._form()
            self._record({k: v for k, v in form.items() if k in ("grant_type", "action")})
            if parts.path == f"{connect}/token":
                self._token(form)
            elif parts.path == f"{BASE_PATH}/login":
                self._login(form)
            elif parts.path == f"{BASE_PATH}/consent":
                self._consent(form)
            else:
                self._html(404, _error_page("not_found", parts.path))

        def _discovery(self) -> None:
            # NOT documented by Wolters Kluwer: the built-in names the issuer and reads the
            # signing keys from its discovery document, the OpenID Connect Discovery path
            # under the issuer. Served so the id token can be checked; see
            # docs/providers/twinfield.md ("jwks_uri").
            issuer = double.issuer
            self._json(
                200,
                {
                    "issuer": issuer,
                    "authorization_endpoint": f"{issuer}/connect/authorize",
                    "token_endpoint": f"{issuer}/connect/token",
                    "userinfo_endpoint": f"{issuer}/connect/userinfo",
                    "jwks_uri": f"{issuer}/.well-known/jwks",
                    "scopes_supported": list(SCOPES),
                    "response_types_supported": ["code", "id_token token"],
                    "id_token_signing_alg_values_supported": ["RS256"],
                    "subject_types_supported": ["public"],
                },
            )

        def _authorize(self, query: dict[str, str]) -> None:
            # [AUTHZ]: client_id, redirect_uri, response_type, scope, nonce and state.
            if query.get("client_id") != CLIENT_ID:
                self._html(400, _error_page("unauthorized_client", "unknown client_id"))
                return
            redirect_uri = query.get("redirect_uri", "")
            # The registered redirect URI must match (OAuth 2.0; Twinfield's own matching
            # rules, e.g. for loopback ports, are not documented: exact match here).
            if redirect_uri not in double.redirect_uris:
                self._html(400, _error_page("invalid_request", "redirect_uri not registered"))
                return
            # [AUTHZ]: a client configured for the code flow can only use response_type=code.
            if query.get("response_type") != "code":
                self._html(400, _error_page("unsupported_response_type", "use code"))
                return
            # [AUTHZ] lists nonce among the parameters the request must carry. How the real
            # server refuses a request without one is not documented: an error page here.
            nonce = query.get("nonce", "")
            if not nonce:
                self._html(400, _error_page("invalid_request", "nonce is required"))
                return
            scopes = tuple(query.get("scope", "").split())
            unknown = [s for s in scopes if s not in SCOPES]
            # [OIDC]: the supported scopes; twf.user needs openid as well.
            if unknown or ("twf.user" in scopes and "openid" not in scopes):
                self._html(400, _error_page("invalid_scope", " ".join(unknown) or "openid"))
                return
            ticket = secrets.token_urlsafe(16)
            with double.lock:
                double.pending[ticket] = _Pending(redirect_uri, query.get("state"), nonce, scopes)
            self._html(
                200,
                _page(
                    "login",
                    "Twinfield login",
                    f"<form id='login' method='post' action='{BASE_PATH}/login'>"
                    f"<input type='hidden' name='ticket' value='{ticket}'>"
                    "<input id='username' name='username'>"
                    "<input id='password' name='password' type='password'>"
                    "<button id='login-submit' type='submit'>Log in</button></form>",
                ),
            )

        def _login(self, form: dict[str, str]) -> None:
            pending = double.pending.get(form.get("ticket", ""))
            user = double.users.get(form.get("username", ""))
            if pending is None:
                self._html(400, _error_page("invalid_request", "unknown login"))
                return
            if user is None or user["password"] != form.get("password"):
                self._html(200, _page("login", "Twinfield login", "<p id='error'>wrong</p>"))
                return
            pending.user = form["username"]
            # [AUTHZ]: "After the end user has logged in he/she will be asked to grant you
            # permission."
            self._html(
                200,
                _page(
                    "consent",
                    "Grant access",
                    f"<form method='post' action='{BASE_PATH}/consent'>"
                    f"<input type='hidden' name='ticket' value='{form['ticket']}'>"
                    "<button id='approve' name='action' value='approve'>Allow</button>"
                    "<button id='deny' name='action' value='deny'>Deny</button></form>",
                ),
            )

        def _consent(self, form: dict[str, str]) -> None:
            with double.lock:
                pending = double.pending.pop(form.get("ticket", ""), None)
            if pending is None or pending.user is None:
                self._html(400, _error_page("invalid_request", "unknown login"))
                return
            back: dict[str, str] = {}
            if form.get("action") == "approve":
                code = secrets.token_urlsafe(24)
                with double.lock:
                    double.codes[code] = (pending, time.time() + 300)
                back["code"] = code
            else:
                back["error"] = "access_denied"  # RFC 6749 §4.1.2.1 (not described by WK)
            if pending.state is not None:
                back["state"] = pending.state
            # No `iss` in the answer: Twinfield documents none (RFC 9207 not claimed).
            self._redirect(f"{pending.redirect_uri}?{urlencode(back)}")

        def _token(self, form: dict[str, str]) -> None:
            # [RT], [AT]: the token endpoint wants the authorization string (client auth).
            if not double.client_ok(self.headers.get("Authorization")):
                self._json(401, {"error": "invalid_client"})
                return
            grant_type = form.get("grant_type")
            if grant_type == "authorization_code":
                self._code_exchange(form)
            elif grant_type == "refresh_token":
                self._refresh(form)
            else:
                self._json(400, {"error": "unsupported_grant_type"})

        def _code_exchange(self, form: dict[str, str]) -> None:
            with double.lock:
                entry = double.codes.pop(form.get("code", ""), None)
            # [RT]: code, grant_type and redirect_uri in the body. PKCE is not documented by
            # Twinfield: a code_verifier tokenctl sends is accepted and not checked.
            if entry is None or entry[1] < time.time():
                self._json(400, {"error": "invalid_grant"})
                return
            pending, _ = entry
            if form.get("redirect_uri") != pending.redirect_uri or pending.user is None:
                self._json(400, {"error": "invalid_grant"})
                return
            offline = "offline_access" in pending.scopes
            grant = _Grant(
                user=pending.user,
                scopes=pending.scopes,
                # [RT]: "A refresh token is a unique token that belongs to one end user and
                # one specific organization. It's valid for 25 years."
                refresh_token=secrets.token_hex(32) if offline else "",
                nonce=pending.nonce,
                auth_time=int(time.time()),
            )
            with double.lock:
                double.grants.append(grant)
                answer: dict[str, Any] = {
                    "access_token": double.issue_access_token(grant),
                    "expires_in": ACCESS_TOKEN_SECONDS,
                    "token_type": "Bearer",
                }
            if offline:
                answer["refresh_token"] = grant.refresh_token
            if "openid" in pending.scopes:
                answer["id_token"] = double.id_token(grant)
            self._json(200, answer)

        def _refresh(self, form: dict[str, str]) -> None:
            token = form.get("refresh_token", "")
            with double.lock:
                grant = next((g for g in double.grants if token and g.refresh_token == token), None)
                if grant is None or grant.revoked:
                    # RFC 6749 §5.2 invalid_grant; Twinfield's own wording is not documented.
                    self._json(400, {"error": "invalid_grant"})
                    return
                # [AT]: the answer carries access_token, expires_in 3600, token_type and
                # refresh_token. Rotation is NOT documented; [RT] says one refresh token
                # serves "as much access tokens as you like for the next 25 years", so the
                # same refresh token comes back and stays valid.
                answer = {
                    "access_token": double.issue_access_token(grant),
                    "expires_in": ACCESS_TOKEN_SECONDS,
                    "token_type": "Bearer",
                    "refresh_token": grant.refresh_token,
                }
            self._json(200, answer)

        def _bearer_grant(self) -> tuple[_Grant, str] | None:
            header = self.headers.get("Authorization", "")
            if not header.startswith("Bearer "):
                return None
            token = header[len("Bearer ") :]
            grant = double.grant_of_access_token(token)
            return (grant, token) if grant is not None else None

        def _userinfo(self) -> None:
            # [OIDC] lists connect/userinfo (OpenID Connect Core §5.3: bearer access token).
            found = self._bearer_grant()
            if found is None:
                self._json(401, {"error": "invalid_token"})
                return
            grant, _ = found
            profile = double.users[grant.user]
            claims = {"sub": profile["sub"]}
            if "twf.user" in grant.scopes:
                claims.update(
                    {
                        k: profile[k]
                        for k in ("twf.id", "twf.organisationUserCode", "twf.organisationId")
                    }
                )
            self._json(200, claims)

        def _validation(self, query: dict[str, str]) -> None:
            # [CLUSTER]: a GET with the authorization string and the parameter `token`.
            if not double.client_ok(self.headers.get("Authorization")):
                self._json(401, {"Message": "Authorization has been denied for this request."})
                return
            token = query.get("token", "")
            grant = double.grant_of_access_token(token) if token else None
            if grant is None:
                # Not documented by Wolters Kluwer: third-party clients (php-twinfield's
                # "If it is invalid, Twinfield returns a status 400", omniauth-twinfield's
                # response["Message"]) report HTTP 400 with a "Message".
                self._json(400, {"Message": "invalid_token"})
                return
            with double.lock:
                self._json(200, double.validation_answer(grant, token))

    return Handler


def start_twinfield(redirect_uris: tuple[str, ...]) -> TwinfieldDouble:
    """Start the double, with ``redirect_uris`` registered for its client."""
    return TwinfieldDouble(redirect_uris).start()
