"""Shared pieces of the OAuth tests: the provider fixture, definitions, a scripted browser."""

from __future__ import annotations

import base64
import json
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from tests.fakes import Cli, Run
from tokenctl.models import TokenSecrets

PASTE_REDIRECT = "https://tokenctl.example/callback"
#: The e-mail claim of the provider's user "mallory": terminal control sequences.
EVIL_EMAIL = "\x1b]0;owned\x07mallory\x9b2J\x1b[31m@example.test"
SCOPES = ["openid", "offline_access", "email", "profile", "invoices:read", "invoices:write"]
PROVIDER_CONFIG: dict[str, Any] = {
    "rotate_refresh_token": True,
    "extra_clients": [
        {
            "client_id": "tokenctl-relay",
            "application_type": "native",
            "redirect_uris": ["http://127.0.0.1/relay/callback.html"],
            "token_endpoint_auth_method": "none",
        },
        {
            "client_id": "tokenctl-paste",
            "application_type": "web",
            "redirect_uris": [PASTE_REDIRECT],
            "token_endpoint_auth_method": "none",
        },
    ],
    "extra_users": {
        "carol": {"password": "carol-password", "deny_scopes": ["invoices:write"]},
        "dave": {"password": "dave-password", "email": "dave@example.test"},
        "erin": {"password": "erin-password", "email": "erin@example.test"},
        "frank": {"password": "frank-password", "email": "frank@example.test"},
        "mallory": {"password": "mallory-password", "email": EVIL_EMAIL},
    },
}
CLIENTS = {
    "tokenctl-public": (None, None),
    "tokenctl-basic": ("tokenctl-basic-secret", "client_secret_basic"),
    "tokenctl-post": ("tokenctl-post-secret", "client_secret_post"),
    "tokenctl-paste": (None, None),
    "tokenctl-relay": (None, None),
}


class RealClock:
    """The wall clock (the provider's tokens live in real time)."""

    def __call__(self) -> datetime:
        return datetime.now(UTC)


def definition_toml(name: str, issuer: str, client_id: str, **extra: Any) -> str:
    """A definition for the local provider, by discovery of its issuer."""
    import tomli_w

    oauth: dict[str, Any] = {
        "issuer": issuer,
        "client_id": client_id,
        "scopes": SCOPES,
        "required_scopes": ["invoices:read", "invoices:write"],
    }
    oauth.update(extra)
    table = {
        "title": f"Acme Books ({client_id})",
        "classification": "Accounting",
        "kind": "oauth2",
        "oauth2": oauth,
    }
    return tomli_w.dumps({"definitions": {name: table}})


def configure(
    cli: Cli,
    tmp_path: Path,
    server: Any,
    client_id: str = "tokenctl-public",
    name: str = "acme-books",
    **extra: Any,
) -> str:
    """Add a definition for ``client_id`` and store its secret (if any) like a user would."""
    source = tmp_path / f"{name}.toml"
    source.write_text(definition_toml(name, server.issuer, client_id, **extra))
    result = cli("definitions", "add", "--file", str(source), "--replace")
    assert result.exit_code == 0, result.stderr
    secret, method = CLIENTS[client_id]
    if secret:
        configured = cli(
            "definitions",
            "configure",
            name,
            "--client-id",
            client_id,
            "--auth-method",
            method,
            "--client-secret-stdin",
            input=secret,
        )
        assert configured.exit_code == 0, configured.stderr
    return name


@dataclass
class ScriptedBrowser:
    """Plays the user: logs in at the provider and lets the browser reach the callback."""

    server: Any
    user: str = "alice"
    password: str = "alice-password"
    approve: bool = True
    grant_scopes: list[str] | None = None
    before_callback: list[str] = field(default_factory=list)  # paths/queries sent first
    pages: list[tuple[int, str]] = field(default_factory=list)
    opened: list[str] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)

    def __call__(self, url: str) -> None:
        self.opened.append(url)
        try:
            final = self.server.browser_login(
                url,
                self.user,
                self.password,
                approve=self.approve,
                follow_to_callback=False,
                grant_scopes=self.grant_scopes,
            )
            base = final.split("?")[0]
            origin = base.rsplit("/", 1)[0]
            for extra in self.before_callback:
                self.pages.append(fetch(origin + extra.format(query=urlsplit(final).query)))
            self.pages.append(fetch(final))
        except BaseException as error:
            self.errors.append(error)
        finally:
            self.done.set()


def fetch(url: str) -> tuple[int, str]:
    """GET like a browser; returns status and body."""
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def query_of(url: str) -> dict[str, str]:
    """The query parameters of ``url``."""
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def introspect(oidc: Any, token: str) -> dict[str, Any]:
    """Ask the real provider (as the confidential client) whether ``token`` is active."""
    credentials = base64.b64encode(b"tokenctl-basic:tokenctl-basic-secret").decode()
    request = urllib.request.Request(
        f"{oidc.issuer}/token/introspection",
        data=urlencode({"token": token}).encode(),
        headers={"Authorization": f"Basic {credentials}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        answer: dict[str, Any] = json.loads(response.read())
        return answer


# -- the "books" definition of the tests with a hand-made token endpoint --------------------


def follow_redirect(url: str) -> None:
    """The 'browser': the provider approves at once and redirects to the loopback listener."""
    query = query_of(url)
    callback = query["redirect_uri"] + "?" + urlencode({"code": "C-1", "state": query["state"]})
    with urllib.request.urlopen(callback, timeout=10) as response:
        response.read()


def write_books(
    cli: Cli, token_url: str, authorization_url: str, *, call_deadline: str | None = None
) -> None:
    """Write the definition ``books`` (client ``tokenctl``, scope ``books``) into cli's home."""
    deadline = f'call_deadline = "{call_deadline}"\n' if call_deadline is not None else ""
    cli.home.mkdir(parents=True, exist_ok=True)
    (cli.home / "definitions.toml").write_text(
        "[definitions.books]\n"
        'title = "Books"\nkind = "oauth2"\n'
        "[definitions.books.oauth2]\n"
        f'token_endpoint = "{token_url}"\n'
        f'authorization_endpoint = "{authorization_url}"\n'
        'client_id = "tokenctl"\nscopes = ["books"]\n' + deadline
    )


def add_books_token(cli: Cli, name: str = "acme") -> Run:
    """Log in to ``books`` as token ``name``; the 'browser' is only there for the login."""
    cli.browser = follow_redirect
    try:
        result = cli("add", name, "--definition", "books", "--yes")
    finally:
        cli.browser = None
    assert result.exit_code == 0, result.stderr
    return result


def stored(cli: Cli, name: str = "acme") -> TokenSecrets:
    """The secrets stored for token ``name`` (they must be there)."""
    secrets = cli.stored(name)
    assert secrets is not None
    return secrets
