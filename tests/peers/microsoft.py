"""A local double of the Microsoft identity platform (v2.0) and the Business Central API.

Two small HTTP servers on 127.0.0.1, each on a free port, started and stopped by a test:

* ``login``: stands for ``https://login.microsoftonline.com``. Every URL carries the
  tenant: ``/{tenant}/v2.0/.well-known/openid-configuration``,
  ``/{tenant}/discovery/v2.0/keys``, ``/{tenant}/oauth2/v2.0/authorize`` and
  ``/{tenant}/oauth2/v2.0/token``.
* ``api``: stands for ``https://api.businesscentral.dynamics.com``:
  ``GET /v2.0/{environment}/api/v2.0/companies`` (also with the tenant before the
  environment) and ``GET /environments/v1.2``.

It implements only what Microsoft documents, and the comment beside each behaviour names
the page it comes from. Where the pages are silent the comment says so; those points are
listed in docs/providers/business-central.md as well. Pages used (cited below by the short
name in brackets):

[auth-code]   https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-auth-code-flow
[oidc]        https://learn.microsoft.com/en-us/entra/identity-platform/v2-protocols-oidc
[refresh]     https://learn.microsoft.com/en-us/entra/identity-platform/refresh-tokens
[access]      https://learn.microsoft.com/en-us/entra/identity-platform/access-tokens
[errors]      https://learn.microsoft.com/en-us/entra/identity-platform/reference-error-codes
[reply-url]   https://learn.microsoft.com/en-us/entra/identity-platform/reply-url
[id-token]    https://learn.microsoft.com/en-us/entra/identity-platform/id-token-claims-reference
[offline-qa]  https://learn.microsoft.com/en-us/answers/questions/806413/scope-offline-access-isnt-being-returned-in-the-to
[bc-url]      https://learn.microsoft.com/en-us/dynamics365/business-central/dev-itpro/webservices/api-endpoint-structure
[bc-company]  https://learn.microsoft.com/en-us/dynamics365/business-central/dev-itpro/api-reference/v2.0/api/dynamics_company_get
[bc-envs]     https://learn.microsoft.com/en-us/dynamics365/business-central/dev-itpro/webservices/api-get-environments
[bc-401]      https://learn.microsoft.com/en-us/answers/questions/286131/daemon-console-application-connecting-to-business

The browser side (login and consent pages) is the double's own: Microsoft's sign-in pages
are not a documented interface. They carry the element ids ``tests/peers/browser_driver.py``
fills (``#username``, ``#password``, ``#login-submit``, ``#approve``/``#deny``), so the login
runs in a real headless Chromium as a person's would.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import html
import http.server
import json
import secrets
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

#: The Business Central resource and its delegated permission ("Dynamics 365 Business
#: Central > delegated > user_impersonation", as the built-in's setup text says).
BC_RESOURCE = "https://api.businesscentral.dynamics.com"
BC_SCOPE = f"{BC_RESOURCE}/user_impersonation"
#: Scopes that are not a resource's permission but OpenID Connect's or the refresh token's.
OIDC_SCOPES = frozenset({"openid", "profile", "email", "offline_access"})
#: [access]: "a random value ranging between 60-90 minutes (75 minutes on average)".
ACCESS_LIFETIME_RANGE = (60 * 60, 90 * 60)
#: [refresh]: "The default lifetime for the refresh tokens is ... 90 days for all other
#: scenarios. Refresh tokens replace themselves with a fresh token upon every use."
REFRESH_LIFETIME = 90 * 24 * 3600
#: The size of a delegated Business Central access token: no Microsoft page states it;
#: tokens seen in practice are about 2,900 characters (docs/providers/business-central.md).
ACCESS_TOKEN_LENGTH = 2900


@dataclass
class User:
    """A directory user of the tenant."""

    username: str  # the UPN, e.g. adele@contoso.test
    password: str
    name: str
    email: str | None
    oid: str = field(default_factory=lambda: str(uuid.uuid4()))


@dataclass
class Company:
    """One company of an environment, as [bc-company] lists its fields."""

    name: str
    display_name: str
    id: str = field(default_factory=lambda: str(uuid.uuid4()))


@dataclass
class Grant:
    """What one user consented to for one client: the tokens hang on it."""

    user: User
    client_id: str
    scopes: tuple[str, ...]  # as requested at /authorize
    issued_at: float
    revoked: bool = False


@dataclass
class IssuedRefreshToken:
    """A refresh token and the grant it belongs to."""

    grant: Grant
    issued_at: float
    used: int = 0


@dataclass
class IssuedAccessToken:
    """An access token for the Business Central API."""

    grant: Grant
    expires_at: float


@dataclass
class _Pending:
    """An /authorize request waiting for the user's sign-in and consent."""

    query: dict[str, str]
    user: User | None = None


@dataclass
class _Code:
    grant: Grant
    redirect_uri: str
    challenge: str | None
    challenge_method: str
    nonce: str | None
    issued_at: float
    redeemed: bool = False


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class MicrosoftDouble:
    """The identity platform for one tenant, one public client, and Business Central."""

    def __init__(
        self,
        *,
        tenant_id: str | None = None,
        tenant_domain: str = "contoso.test",
        client_id: str | None = None,
        environments: Mapping[str, list[Company]] | None = None,
    ) -> None:
        from joserfc.jwk import RSAKey

        self.tenant_id = tenant_id or str(uuid.uuid4())
        self.tenant_domain = tenant_domain
        self.client_id = client_id or str(uuid.uuid4())
        self.users: dict[str, User] = {}
        self.environments: dict[str, list[Company]] = dict(
            environments
            or {
                "Production": [
                    Company("CRONUS USA, Inc.", "CRONUS USA, Inc."),
                    Company("My Company", "My Company"),
                ]
            }
        )
        self.key = RSAKey.generate_key(2048, parameters={"kid": _b64url(secrets.token_bytes(20))})
        self.lock = threading.Lock()
        self.consented: set[tuple[str, str]] = set()  # (user oid, client id)
        self.pending: dict[str, _Pending] = {}
        self.codes: dict[str, _Code] = {}
        self.refresh_tokens: dict[str, IssuedRefreshToken] = {}
        self.access_tokens: dict[str, IssuedAccessToken] = {}
        #: Every request to /authorize and /token, as received (form or query), in order.
        self.authorize_requests: list[dict[str, str]] = []
        self.token_requests: list[dict[str, str]] = []
        #: Every token response sent, in order (the test reads what tokenctl should hold).
        self.token_responses: list[dict[str, Any]] = []
        self.api_requests: list[tuple[str, str | None]] = []  # (path, bearer token)
        self._servers: list[http.server.ThreadingHTTPServer] = []
        self.login_base = ""
        self.api_base = ""

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> MicrosoftDouble:
        """Start both servers on free 127.0.0.1 ports."""
        self.login_base = self._serve(_LoginHandler)
        self.api_base = self._serve(_ApiHandler)
        return self

    def _serve(self, handler: type[_Handler]) -> str:
        double = self

        class Bound(handler):  # type: ignore[valid-type,misc]
            pass

        Bound.double = double
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Bound)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self._servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    def stop(self) -> None:
        """Stop both servers."""
        for server in self._servers:
            server.shutdown()
            server.server_close()
        self._servers.clear()

    def __enter__(self) -> MicrosoftDouble:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what a test sets up or does as an administrator -------------------------------------

    def add_user(self, username: str, password: str, name: str, email: str | None) -> User:
        """A user of the tenant who may sign in."""
        user = User(username, password, name, email)
        self.users[username] = user
        return user

    def issuer(self, tenant: str | None = None) -> str:
        """[oidc]: the issuer names the tenant by its id, whatever the URL used."""
        return f"{self.login_base}/{tenant or self.tenant_id}/v2.0"

    def revoke_user(self, username: str) -> int:
        """Revoke every refresh token of ``username``, as an admin or the user can.

        [refresh] "Token revocation": "User revokes their refresh tokens" and "Admin revokes
        all refresh tokens for a user" revoke them for every kind of client. Access tokens
        already issued stay usable until they expire ([access] "Token lifetime": the lifetime
        is the only end a client learns of; revocation is not described for them).
        """
        with self.lock:
            grants = {id(r.grant): r.grant for r in self.refresh_tokens.values()}
            hit = [g for g in grants.values() if g.user.username == username and not g.revoked]
            for grant in hit:
                grant.revoked = True
            return len(hit)

    def refresh_token_usable(self, refresh_token: str) -> bool:
        """Whether a refresh with ``refresh_token`` would be served now."""
        with self.lock:
            issued = self.refresh_tokens.get(refresh_token)
            return issued is not None and self._refusal(issued, time.time()) is None

    # -- tokens ------------------------------------------------------------------------------

    def _access_token(self, grant: Grant, now: float, lifetime: int) -> str:
        """A JWT-shaped v1.0 access token for Business Central of ~ACCESS_TOKEN_LENGTH chars.

        [access]: access tokens are opaque to clients ("must be treated as opaque
        strings"); resources that keep the default get v1.0 tokens, whose example there
        carries the claims used here. The size is padded in ``aio`` (an opaque claim).
        """
        from joserfc import jwt

        user = grant.user
        claims: dict[str, Any] = {
            "aud": BC_RESOURCE,
            "iss": f"https://sts.windows.net/{self.tenant_id}/",
            "iat": int(now),
            "nbf": int(now),
            "exp": int(now) + lifetime,
            "acr": "1",
            "aio": "",
            "amr": ["pwd"],
            "appid": grant.client_id,
            # access-token-claims-reference (learn.microsoft.com/en-us/entra/identity-platform/
            # access-token-claims-reference): appidacr "0" for a public client.
            "appidacr": "0",
            "name": user.name,
            "oid": user.oid,
            "rh": _b64url(secrets.token_bytes(24)),
            "scp": " ".join(
                s.removeprefix(BC_RESOURCE + "/") for s in grant.scopes if s not in OIDC_SCOPES
            ),
            "sub": _b64url(hashlib.sha256(f"{user.oid}:{grant.client_id}".encode()).digest()),
            "tid": self.tenant_id,
            "unique_name": user.username,
            "upn": user.username,
            "uti": _b64url(secrets.token_bytes(16)),
            "ver": "1.0",
        }
        header = {"typ": "JWT", "alg": "RS256", "kid": self.key.kid, "x5t": self.key.kid}
        bare = jwt.encode(header, claims, self.key)
        # Each 3 characters of the claim add 4 to the (base64url) payload segment.
        missing = max(ACCESS_TOKEN_LENGTH - len(bare), 0)
        claims["aio"] = _b64url(secrets.token_bytes(missing))[: -(-missing * 3 // 4)]
        return jwt.encode(header, claims, self.key)

    def _id_token(self, grant: Grant, nonce: str | None, now: float) -> str:
        """[id-token]: a v2.0 ID token; ``oid``/``name``/``preferred_username`` need ``profile``,
        ``email`` needs ``email`` (and a mail address on the user)."""
        from joserfc import jwt

        user = grant.user
        claims: dict[str, Any] = {
            "aud": grant.client_id,
            "iss": self.issuer(),
            "iat": int(now),
            "nbf": int(now),
            "exp": int(now) + 3600,
            "sub": _b64url(hashlib.sha256(f"{user.oid}:{grant.client_id}:id".encode()).digest()),
            "tid": self.tenant_id,
            "ver": "2.0",
        }
        if nonce:
            claims["nonce"] = nonce
        if "profile" in grant.scopes:  # [id-token]: also for oid
            claims["oid"] = user.oid
            claims["name"] = user.name
            claims["preferred_username"] = user.username
        if "email" in grant.scopes and user.email:
            claims["email"] = user.email
        return jwt.encode({"typ": "JWT", "alg": "RS256", "kid": self.key.kid}, claims, self.key)

    def issue(self, grant: Grant, nonce: str | None, now: float) -> dict[str, Any]:
        """A token response ([auth-code] "Successful response", both for code and refresh)."""
        low, high = ACCESS_LIFETIME_RANGE
        lifetime = low + secrets.randbelow(high - low)
        access = self._access_token(grant, now, lifetime)
        self.access_tokens[access] = IssuedAccessToken(grant, now + lifetime)
        body: dict[str, Any] = {
            "token_type": "Bearer",  # [auth-code]: "The only type ... supports is Bearer"
            # [auth-code]: "The scopes that the access_token is valid for", in the example
            # with the resource prefix. openid/profile/email/offline_access are not scopes
            # of the Business Central resource, so they are not echoed; [offline-qa]:
            # offline_access "is never returned as a scope".
            "scope": " ".join(s for s in grant.scopes if s not in OIDC_SCOPES),
            "expires_in": lifetime,
            # Not in [auth-code]'s table, but present in the platform's token responses
            # (seen in practice; docs silent). tokenctl must ignore it.
            "ext_expires_in": lifetime,
            "access_token": access,
        }
        if "offline_access" in grant.scopes:  # [auth-code]: "Only provided if offline_access"
            refresh = "1.A" + _b64url(secrets.token_bytes(600))  # opaque ([refresh]: encrypted)
            self.refresh_tokens[refresh] = IssuedRefreshToken(grant, now)
            body["refresh_token"] = refresh
        if "openid" in grant.scopes:  # [auth-code]: "Only provided if openid scope"
            body["id_token"] = self._id_token(grant, nonce, now)
        self.token_responses.append(body)
        return body

    def _refusal(self, issued: IssuedRefreshToken, now: float) -> tuple[int, str] | None:
        """Why a refresh token is refused now ([errors] codes), or None."""
        if issued.grant.revoked:
            return 50173, (
                "AADSTS50173: The provided grant has expired due to it being revoked, a fresh "
                "auth token is needed. The user might have changed or reset their password. "
                f"The grant was issued on '{_stamp(issued.grant.issued_at)}' and the "
                f"TokensValidFrom date (before which tokens are not valid) for this user is "
                f"'{_stamp(now)}'."
            )
        if now - issued.issued_at > REFRESH_LIFETIME:
            return 700082, (
                "AADSTS700082: The refresh token has expired due to inactivity. The token was "
                f"issued on {_stamp(issued.issued_at)} and was inactive for 90.00:00:00."
            )
        return None

    def age_refresh_token(self, refresh_token: str, seconds: float) -> None:
        """Make ``refresh_token`` older by ``seconds`` (to reach [refresh]'s 90 days)."""
        with self.lock:
            self.refresh_tokens[refresh_token].issued_at -= seconds


def _stamp(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%m/%d/%Y %H:%M:%S")


def error_body(error: str, code: int, description: str) -> dict[str, Any]:
    """[errors] "Handling error codes": the platform's JSON error with its AADSTS details."""
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    trace, correlation = str(uuid.uuid4()), str(uuid.uuid4())
    return {
        "error": error,
        "error_description": f"{description}\r\nTrace ID: {trace}\r\n"
        f"Correlation ID: {correlation}\r\nTimestamp: {now}",
        "error_codes": [code],
        "timestamp": now,
        "trace_id": trace,
        "correlation_id": correlation,
        "error_uri": f"https://login.microsoftonline.com/error?code={code}",
    }


class _Handler(http.server.BaseHTTPRequestHandler):
    double: MicrosoftDouble
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        return

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def json(self, status: int, data: Any, headers: Mapping[str, str] | None = None) -> None:
        self._send(status, json.dumps(data).encode(), "application/json; charset=utf-8", headers)

    def page(self, status: int, body: str) -> None:
        self._send(status, body.encode(), "text/html; charset=utf-8")

    def redirect(self, location: str) -> None:
        self._send(302, b"", "text/plain", {"Location": location})

    def form(self) -> dict[str, str]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode()
        return {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}

    def query(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}

    def parts(self) -> list[str]:
        return [p for p in urlsplit(self.path).path.split("/") if p]


class _LoginHandler(_Handler):
    """login.microsoftonline.com: discovery, keys, authorize, token, per tenant."""

    def tenant(self, name: str) -> bool:
        """[oidc]: the tenant segment is the tenant id or its domain name."""
        return name in (self.double.tenant_id, self.double.tenant_domain)

    def unknown_tenant(self, name: str) -> None:
        # [errors] AADSTS90002 "InvalidTenantName - The tenant name wasn't found".
        self.json(
            400,
            error_body(
                "invalid_tenant",
                90002,
                f"AADSTS90002: Tenant '{name}' not found. Check to make "
                "sure you have the correct tenant ID and are signing into the correct cloud.",
            ),
        )

    def do_GET(self) -> None:
        parts = self.parts()
        if len(parts) >= 2 and not self.tenant(parts[0]):
            return self.unknown_tenant(parts[0])
        if parts[1:] == ["v2.0", ".well-known", "openid-configuration"]:
            return self.json(200, self.discovery(parts[0]))
        if parts[1:] == ["discovery", "v2.0", "keys"]:
            return self.json(200, {"keys": [self.double.key.as_dict(private=False)]})
        if parts[1:] == ["oauth2", "v2.0", "authorize"]:
            return self.authorize(self.query())
        self.json(404, {"error": "not_found"})

    def do_POST(self) -> None:
        parts = self.parts()
        if len(parts) >= 2 and not self.tenant(parts[0]):
            return self.unknown_tenant(parts[0])
        if parts[1:] == ["oauth2", "v2.0", "token"]:
            return self.token(self.form())
        if parts[1:] == ["oauth2", "v2.0", "authorize", "login"]:
            return self.login(self.form())
        if parts[1:] == ["oauth2", "v2.0", "authorize", "consent"]:
            return self.consent(self.form())
        self.json(404, {"error": "not_found"})

    def discovery(self, tenant: str) -> dict[str, Any]:
        """[oidc] "Sample response": endpoints with the tenant in each; no revocation endpoint,
        and userinfo on Microsoft Graph (which takes Graph tokens only)."""
        base = f"{self.double.login_base}/{self.double.tenant_id}"
        return {
            "issuer": self.double.issuer(),
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
            "jwks_uri": f"{base}/discovery/v2.0/keys",
            "userinfo_endpoint": f"{self.double.api_base}/graph/oidc/userinfo",
            "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
            "token_endpoint_auth_methods_supported": [
                "client_secret_post",
                "private_key_jwt",
                "client_secret_basic",
            ],
            "response_modes_supported": ["query", "fragment", "form_post"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "request_uri_parameter_supported": False,
            "tenant_region_scope": "EU",
            "cloud_instance_name": "microsoftonline.com",
        }

    # -- /authorize --------------------------------------------------------------------------

    def authorize(self, query: dict[str, str]) -> None:
        double = self.double
        with double.lock:
            double.authorize_requests.append(dict(query))
        if query.get("client_id") != double.client_id:
            # [errors] AADSTS700016: the application was not found in the directory.
            return self.error_page(
                "AADSTS700016",
                f"Application with identifier '{query.get('client_id')}' was "
                "not found in the directory.",
            )
        if not _registered_redirect(query.get("redirect_uri", "")):
            return self.error_page(  # [errors] AADSTS50011, [reply-url]
                "AADSTS50011",
                "The redirect URI specified in the request does not match the "
                "redirect URIs configured for the application.",
            )
        redirect = query["redirect_uri"]
        if query.get("response_type") != "code":
            return self.redirect_error(redirect, query, "unsupported_response_type", "AADSTS70005")
        scopes = query.get("scope", "").split()
        resources = {s for s in scopes if s not in OIDC_SCOPES}
        if resources != {BC_SCOPE}:
            # [errors] AADSTS70011 InvalidScope; this double knows one resource permission.
            return self.redirect_error(redirect, query, "invalid_scope", "AADSTS70011")
        # [auth-code]: code_challenge_method "S256" or "plain" (the default); the answer to
        # another method is not documented, so the double does not check it.
        request_id = secrets.token_urlsafe(16)
        with double.lock:
            double.pending[request_id] = _Pending(dict(query))
        # No single sign-on session is kept, so every login asks for the credentials, which
        # is what [auth-code] says prompt=login does.
        self.page(200, _login_page(request_id))

    def login(self, form: dict[str, str]) -> None:
        double = self.double
        pending = double.pending.get(form.get("request", ""))
        if pending is None:
            # The double's own page state (not a Microsoft interface): no AADSTS code.
            return self.error_page("unknown_request", "The login request is unknown.")
        user = double.users.get(form.get("username", ""))
        if user is None or not secrets.compare_digest(user.password, form.get("password", "")):
            # [errors] AADSTS50126: invalid username or password.
            return self.page(
                200,
                _login_page(
                    form["request"],
                    "AADSTS50126: Error validating "
                    "credentials due to invalid username or password.",
                ),
            )
        pending.user = user
        if (user.oid, double.client_id) in double.consented and pending.query.get(
            "prompt"
        ) != "consent":
            return self.complete(form["request"])
        # [auth-code]: the platform "ensures that the user has consented to the permissions
        # indicated in the scope query parameter", asking once.
        self.page(200, _consent_page(form["request"], pending.query.get("scope", "")))

    def consent(self, form: dict[str, str]) -> None:
        double = self.double
        request_id = form.get("request", "")
        pending = double.pending.get(request_id)
        if pending is None or pending.user is None:
            return self.error_page("unknown_request", "The consent request is unknown.")
        if form.get("decision") != "approve":
            double.pending.pop(request_id, None)
            # [auth-code] "Error response": access_denied; [errors] AADSTS65004 declined.
            return self.redirect_error(
                pending.query["redirect_uri"],
                pending.query,
                "access_denied",
                "AADSTS65004",
                "User declined to consent to access the app.",
            )
        double.consented.add((pending.user.oid, double.client_id))
        self.complete(request_id)

    def complete(self, request_id: str) -> None:
        """[auth-code] "Successful response": code and state on the redirect URI (no iss)."""
        double = self.double
        with double.lock:
            pending = double.pending.pop(request_id)
            assert pending.user is not None
            query = pending.query
            grant = Grant(
                pending.user, double.client_id, tuple(query["scope"].split()), time.time()
            )
            code = "1.A" + _b64url(secrets.token_bytes(90))
            double.codes[code] = _Code(
                grant,
                query["redirect_uri"],
                query.get("code_challenge"),
                query.get("code_challenge_method", "plain"),
                query.get("nonce"),
                time.time(),
            )
        answer = {"code": code}
        if "state" in query:
            answer["state"] = query["state"]
        self.redirect(_with_query(query["redirect_uri"], answer))

    def redirect_error(
        self, redirect: str, query: dict[str, str], error: str, code: str, text: str = ""
    ) -> None:
        answer = {"error": error, "error_description": f"{code}: {text}".rstrip(": ")}
        if "state" in query:
            answer["state"] = query["state"]
        self.redirect(_with_query(redirect, answer))

    def error_page(self, code: str, text: str) -> None:
        # The browser driver reads #error and #error_description on a data-page=error page.
        self.page(
            400,
            "<!doctype html><html><head><title>Sign in</title></head><body data-page=error>"
            f"<p id=error>{html.escape(code)}</p>"
            f"<p id=error_description>{html.escape(text)}</p></body></html>",
        )

    # -- /token ------------------------------------------------------------------------------

    def token(self, form: dict[str, str]) -> None:
        double = self.double
        with double.lock:
            double.token_requests.append(dict(form))
            status, body = self._token(form, time.time())
        self.json(status, body)

    def _token(self, form: dict[str, str], now: float) -> tuple[int, dict[str, Any]]:
        double = self.double
        if form.get("client_id") != double.client_id and not self.headers.get("Authorization"):
            return 400, error_body(
                "unauthorized_client",
                700016,
                f"AADSTS700016: Application with identifier "
                f"'{form.get('client_id')}' was not found in the directory.",
            )
        if form.get("client_secret") or self.headers.get("Authorization"):
            # [errors] AADSTS700025: a public client must present no secret.
            return 401, error_body(
                "invalid_client",
                700025,
                "AADSTS700025: Client is public so neither "
                "'client_assertion' nor 'client_secret' should be presented.",
            )
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            return self._redeem(form, now)
        if grant_type == "refresh_token":
            return self._refresh(form, now)
        return 400, error_body(
            "unsupported_grant_type",
            70003,
            "AADSTS70003: The app requested an unsupported grant type.",
        )

    def _redeem(self, form: dict[str, str], now: float) -> tuple[int, dict[str, Any]]:
        code = self.double.codes.get(form.get("code", ""))
        if code is None or now - code.issued_at > 600:
            # [auth-code]: codes "expire after about 10 minutes"; invalid_grant.
            return 400, error_body(
                "invalid_grant",
                70008,
                "AADSTS70008: The provided authorization code or "
                "refresh token has expired due to inactivity. Send a new interactive "
                "authorization request for this user and resource.",
            )
        if code.redeemed:  # [errors] AADSTS54005
            return 400, error_body(
                "invalid_grant",
                54005,
                "AADSTS54005: OAuth2 Authorization code was already "
                "redeemed, please retry with a new valid code or use an existing refresh token.",
            )
        if form.get("redirect_uri") != code.redirect_uri:  # [auth-code]: "The same redirect_uri"
            return 400, error_body(
                "invalid_grant", 70004, "AADSTS70004: The app returned an invalid redirect URI."
            )
        if code.challenge is not None:
            verifier = form.get("code_verifier", "")
            computed = (
                _b64url(hashlib.sha256(verifier.encode()).digest())
                if code.challenge_method == "S256"
                else verifier
            )
            if not secrets.compare_digest(computed, code.challenge):
                # [auth-code] "invalid_grant: The authorization code or PKCE code verifier is
                # invalid"; [errors] AADSTS501481.
                return 400, error_body(
                    "invalid_grant",
                    501481,
                    "AADSTS501481: The Code_Verifier does not match "
                    "the code_challenge supplied in the authorization request.",
                )
        # [auth-code]: the token request's scope is optional; "The scopes must all be from a
        # single resource, along with OIDC scopes" - anything else is invalid_scope.
        extra = [s for s in form.get("scope", "").split() if s not in OIDC_SCOPES]
        if extra and extra != [BC_SCOPE]:
            return 400, error_body(
                "invalid_scope",
                70011,
                "AADSTS70011: The provided value for the input parameter 'scope' is not valid.",
            )
        code.redeemed = True
        return 200, self.double.issue(code.grant, code.nonce, now)

    def _refresh(self, form: dict[str, str], now: float) -> tuple[int, dict[str, Any]]:
        issued = self.double.refresh_tokens.get(form.get("refresh_token", ""))
        if issued is None or issued.grant.client_id != form.get("client_id"):
            # [errors] AADSTS70000 "InvalidGrant - ... The refresh token isn't valid".
            return 400, error_body(
                "invalid_grant",
                70000,
                "AADSTS70000: The provided value for the 'refresh_token' is not valid.",
            )
        refusal = self.double._refusal(issued, now)
        if refusal is not None:
            return 400, error_body("invalid_grant", *refusal)
        requested = [s for s in form.get("scope", "").split() if s not in OIDC_SCOPES]
        if requested and requested != [BC_SCOPE]:
            # [auth-code] refresh: "equivalent to or a subset of the scopes requested in the
            # original authorization_code request leg".
            return 400, error_body(
                "invalid_scope",
                70011,
                "AADSTS70011: The provided value for the input parameter 'scope' is not valid.",
            )
        issued.used += 1
        # [refresh]: "The Microsoft identity platform doesn't revoke old refresh tokens when
        # used to fetch new access tokens": the one sent stays in self.refresh_tokens.
        return 200, self.double.issue(issued.grant, None, now)


class _ApiHandler(_Handler):
    """api.businesscentral.dynamics.com (and the Graph userinfo endpoint of discovery)."""

    def do_GET(self) -> None:
        double = self.double
        parts = self.parts()
        bearer = self.headers.get("Authorization", "")
        token = bearer[7:] if bearer.lower().startswith("bearer ") else None
        with double.lock:
            double.api_requests.append((urlsplit(self.path).path, token))
            issued = double.access_tokens.get(token or "")
        if parts == ["graph", "oidc", "userinfo"]:
            # Stands for https://graph.microsoft.com/oidc/userinfo ([oidc] sample response):
            # it takes Microsoft Graph tokens, and a Business Central one is not (its aud).
            return self.json(
                401,
                {
                    "error": {
                        "code": "InvalidAuthenticationToken",
                        "message": "Access token validation failure.",
                    }
                },
            )
        if issued is None or issued.expires_at <= time.time():
            # [bc-401]: the API's answer to a token it does not accept.
            return self.json(
                401,
                {
                    "error": {
                        "code": "Authentication_InvalidCredentials",
                        "message": "The server has rejected the client credentials.",
                    }
                },
                {"WWW-Authenticate": 'Bearer realm="", error="invalid_token"'},
            )
        if parts == ["environments", "v1.2"]:
            # [bc-envs]: the environments of the token's tenant, wrapped in "value".
            return self.json(
                200,
                {
                    "value": [
                        {
                            "aadTenantId": double.tenant_id,
                            "applicationFamily": "BusinessCentral",
                            "type": "Production" if name == "Production" else "Sandbox",
                            "name": name,
                            "countryCode": "NL",
                        }
                        for name in double.environments
                    ]
                },
            )
        # [bc-url]: {base}/v2.0/{Entra ID}/{environment}/api/... or {base}/v2.0/{environment}/...
        if parts[:1] == ["v2.0"] and parts[-3:] == ["api", "v2.0", "companies"]:
            middle = parts[1:-3]
            if len(middle) == 2 and middle[0] in (double.tenant_id, double.tenant_domain):
                middle = middle[1:]
            if len(middle) == 1 and middle[0] in double.environments:
                companies = double.environments[middle[0]]
                # [bc-company]: an OData collection of company objects.
                return self.json(
                    200,
                    {
                        "@odata.context": f"{double.api_base}/v2.0/{middle[0]}/api/v2.0/$metadata"
                        "#companies",
                        "value": [
                            {
                                "id": c.id,
                                "systemVersion": "25.0.23364.23952",
                                "timestamp": 1,
                                "name": c.name,
                                "displayName": c.display_name,
                                "businessProfileId": "",
                            }
                            for c in companies
                        ],
                    },
                )
            # Docs silent on the answer for an unknown environment: 404 with an OData error.
            return self.json(
                404, {"error": {"code": "NotFound", "message": "The environment does not exist."}}
            )
        self.json(
            404,
            {"error": {"code": "BadRequest_NotFound", "message": "The request URI is not valid."}},
        )


def _registered_redirect(uri: str) -> bool:
    """[reply-url] "Localhost exceptions": a loopback redirect URI's port is ignored, so the
    registered ``http://127.0.0.1/callback`` matches ``http://127.0.0.1:PORT/callback``."""
    parts = urlsplit(uri)
    return (
        parts.scheme == "http"
        and parts.hostname in ("127.0.0.1", "localhost")
        and parts.path == "/callback"
        and not parts.query
    )


def _with_query(uri: str, params: Mapping[str, str]) -> str:
    return uri + ("&" if "?" in uri else "?") + urlencode(dict(params))


def _login_page(request_id: str, error: str | None = None) -> str:
    shown = f"<p id=error class=error>{html.escape(error)}</p>" if error else ""
    return (
        "<!doctype html><html><head><title>Sign in to your account</title></head>"
        "<body data-page=login><h1>Sign in</h1>"
        + shown
        + "<form id=login-form method=post action=authorize/login>"
        f"<input type=hidden name=request value={html.escape(request_id)}>"
        "<input id=username name=username autocomplete=username>"
        "<input id=password name=password type=password>"
        "<button id=login-submit type=submit>Sign in</button></form></body></html>"
    )


def _consent_page(request_id: str, scope: str) -> str:
    items = "".join(f"<li>{html.escape(s)}</li>" for s in scope.split())
    return (
        "<!doctype html><html><head><title>Permissions requested</title></head>"
        f"<body data-page=consent><h1>Permissions requested</h1><ul>{items}</ul>"
        "<form id=consent-form method=post action=consent>"
        f"<input type=hidden name=request value={html.escape(request_id)}>"
        "<button id=approve name=decision value=approve type=submit>Accept</button>"
        "<button id=deny name=decision value=deny type=submit>Cancel</button>"
        "</form></body></html>"
    )


@contextlib.contextmanager
def running(**options: Any) -> Iterator[MicrosoftDouble]:
    """A started double, stopped afterwards."""
    double = MicrosoftDouble(**options).start()
    try:
        yield double
    finally:
        double.stop()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def sign_in(authorization_url: str, username: str, password: str, *, approve: bool = True) -> str:
    """Play the user's browser at the double (no JavaScript), up to the client's redirect.

    Fetches the login page, posts the credentials and, when asked, the consent; then GETs
    the redirect URI (the client's loopback listener) as a browser would. Returns that URI.
    For in-process tests; the end-to-end tests use headless Chromium instead.
    """
    opener = urllib.request.build_opener(_NoRedirect())

    def call(url: str, data: dict[str, str] | None = None) -> tuple[int, str, str]:
        body = urlencode(data).encode() if data is not None else None
        try:
            with opener.open(urllib.request.Request(url, data=body), timeout=15) as response:
                return (
                    response.status,
                    response.headers.get("Location", ""),
                    response.read().decode(),
                )
        except urllib.error.HTTPError as error:
            return error.code, error.headers.get("Location", ""), error.read().decode()

    status, _, page = call(authorization_url)
    if status != 200 or "data-page=login" not in page:
        raise AssertionError(f"no login page ({status}): {page[:300]}")
    request_id = page.split("name=request value=", 1)[1].split(">", 1)[0]
    base = authorization_url.split("?", 1)[0]
    status, location, page = call(
        base + "/login", {"request": request_id, "username": username, "password": password}
    )
    if status == 200 and "data-page=consent" in page:
        decision = "approve" if approve else "deny"
        status, location, page = call(
            base + "/consent", {"request": request_id, "decision": decision}
        )
    if status != 302:
        raise AssertionError(f"the double did not redirect ({status}): {page[:300]}")
    with contextlib.suppress(urllib.error.HTTPError):
        urllib.request.urlopen(location, timeout=15).read()
    return location
