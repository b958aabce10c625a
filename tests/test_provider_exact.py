"""Exact Online end to end: the built-in definition against the local double (tests/peers/exact.py).

The built-in ``exact-online-nl`` is used as a user uses it: the whole built-in copied
into an override with its hosts pointed at the double (docs/providers/exact-online.md),
then ``definitions configure`` for the client, the relay page and the login mode.
"""

from __future__ import annotations

import http.cookiejar
import importlib.resources
import json
import os
import tomllib
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from tests.fakes import Cli
from tests.peers.exact import ExactDouble, serving
from tests.proc import tokenctl
from tests.test_login_modes import static_site  # noqa: F401 - a fixture used below
from tests.test_oauth_chromium import browser_env, with_browser

CLIENT_ID = "2f5c1e0a-exact-app"
CLIENT_SECRET = "exact-client-secret-value"
DEFINITION = "exact-online-nl"
SITE = "https://start.exactonline.nl"


def exact_override(base_url: str) -> str:
    """The built-in exact-online-nl as a user's override: hosts moved to the double."""
    text = importlib.resources.files("tokenctl.definitions").joinpath("builtin.toml").read_text()
    table = dict(tomllib.loads(text)["definitions"][DEFINITION])
    table.pop("setup", None)  # as docs/providers/exact-online.md says: without its setup
    oauth = {
        key: value.replace(SITE, base_url) if isinstance(value, str) else value
        for key, value in table["oauth2"].items()
    }
    table["oauth2"] = oauth
    return tomli_w.dumps({"definitions": {DEFINITION: table}})


def setup_home(run: Any, tmp_path: Path, base_url: str, mode: str, redirect_uri: str) -> None:
    """``definitions add`` the override, then ``definitions configure`` the client."""
    source = tmp_path / f"{DEFINITION}.toml"
    source.write_text(exact_override(base_url))
    added = run("definitions", "add", "--file", str(source))
    assert added.exit_code == 0, added.stderr
    configured = run(
        "definitions", "configure", DEFINITION, "--client-id", CLIENT_ID,
        "--client-secret-stdin", "--login-mode", mode, "--redirect-uri", redirect_uri,
        input=CLIENT_SECRET,
    )  # fmt: skip
    assert configured.exit_code == 0, configured.stderr


@pytest.fixture
def relay_site(static_site: tuple[str, Path]) -> tuple[str, Path]:  # noqa: F811
    """The organisation's web site, with the folder the relay page goes into."""
    site_url, root = static_site
    (root / "relay").mkdir()
    return f"{site_url}/relay/callback.html", root / "relay" / "callback.html"


@pytest.mark.peers
def test_exact_online_relay_login_in_chromium_then_overview_token_probe_and_delete(
    tmp_path, real_keyring, chromium, relay_site
):
    relay_uri, relay_file = relay_site
    home = tmp_path / "home"
    out = tmp_path / "browser"
    env = browser_env(real_keyring.child_env(), out, "alice", "alice-password")

    def run(*args: str, input: str | None = None) -> Any:
        return tokenctl(*args, home=home, env=env, input=input)

    with serving(ExactDouble(CLIENT_ID, CLIENT_SECRET, relay_uri)) as exact:
        setup_home(run, tmp_path, exact.base_url, "relay", relay_uri)
        relay_file.write_text(run("definitions", "relay-page").stdout)

        added, _driver, log = with_browser(
            "add", "acme-exact", "--definition", DEFINITION, home=home, env=env, out=out
        )
        assert added.exit_code == 0, f"{added.stderr}\n{log}"
        assert f"The provider returns to {relay_uri}" in added.stderr
        # Exact's own fresh-login parameter, and no scope parameter (Exact takes none).
        asked = exact.authorize_requests[-1]
        assert asked["force_login"] == "1" and "scope" not in asked
        assert "code_challenge" in asked and asked["state"]

        token = run("show", "acme-exact", "--json").json()["token"]
        assert token["attributes"]["tenant"] == "1234567"  # Me.CurrentDivision
        assert token["account"] == "alice"  # Me.UserName: Exact has no OpenID id token
        assert "account" not in token["attributes"]
        assert token["has_refresh_token"]
        listed = run("list", "--json").json()["tokens"]
        assert [(t["name"], t["status"]) for t in listed] == [("acme-exact", "valid")]
        # The access token lives 600 s, though Exact sends "600" as a string.
        expires = datetime.fromisoformat(token["expires_at"].replace("Z", "+00:00"))
        assert timedelta(seconds=590) < expires - datetime.now(UTC) <= timedelta(seconds=600)

        calls = len(exact.token_answers)
        # Right after login Exact refuses a new access token: renew says so, asks nothing.
        renewed = run("renew", "acme-exact", "--json")
        assert renewed.exit_code == 0, renewed.stderr
        assert renewed.json()["token"]["renewed_by"] == "not due"
        assert "refreshes it only from" in renewed.stderr
        assert "tokenctl renew acme-exact --login" in renewed.stderr
        served = run("token", "acme-exact")
        assert served.exit_code == 0
        assert served.stdout.strip() == exact.grants()[-1].access_token
        assert len(exact.token_answers) == calls  # neither renew nor token called Exact

        probed = run("check", "--probe", "--json")
        assert probed.exit_code == 0, probed.stderr

        deleted = run("delete", "acme-exact", "--yes")
        assert deleted.exit_code == 0, deleted.stderr
        assert "tokenctl add acme-exact --definition exact-online-nl" in deleted.stdout
        assert run("show", "acme-exact").exit_code == 3


class ShiftedClock:
    """tokenctl's clock moved with the double's: both live in the same shifted time."""

    def __init__(self, double: ExactDouble) -> None:
        self.double = double

    def __call__(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self.double.clock_offset)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def pasted_login(authorize_url: str) -> str:
    """Play the user in a browser: log in and allow; the address the browser lands on."""
    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()), _NoRedirect()
    )
    base = authorize_url.split("/api/oauth2/auth")[0]
    with opener.open(authorize_url) as page:
        assert 'data-page="login"' in page.read().decode()
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(authorize_url).query))
    login = urllib.parse.urlencode(
        {"query": json.dumps(query), "username": "alice", "password": "alice-password"}
    ).encode()
    with opener.open(f"{base}/api/oauth2/login", data=login) as page:
        assert 'data-page="consent"' in page.read().decode()
    consent = urllib.parse.urlencode({"query": json.dumps(query), "decision": "approve"})
    try:
        opener.open(f"{base}/api/oauth2/consent", data=consent.encode())
    except urllib.error.HTTPError as redirect:  # the 302 back to the registered URI
        assert redirect.code == 302
        return str(redirect.headers["Location"])
    raise AssertionError("the consent did not redirect")


@pytest.fixture
def exact_double() -> Iterator[ExactDouble]:
    with serving(ExactDouble(CLIENT_ID, CLIENT_SECRET, "https://auth.example.test/cb")) as double:
        yield double


def paste_login(cli: Cli, *args: str) -> Any:
    """Run ``add``/``renew --login`` in paste mode, the user pasting the landing address."""
    read_end, write_end = os.pipe()

    def browser(url: str) -> None:
        os.write(write_end, (pasted_login(url) + "\n").encode())

    cli.browser = browser
    try:
        with os.fdopen(read_end) as stdin:
            return cli(*args, "--paste", "--yes", input=stdin)
    finally:
        os.close(write_end)


def test_exact_online_refresh_timing_rotation_and_dead_refresh_tokens(tmp_path, exact_double):
    exact = exact_double
    cli = Cli(home=tmp_path / "home", clock=ShiftedClock(exact))  # type: ignore[arg-type]
    setup_home(cli, tmp_path, exact.base_url, "paste", exact.redirect_uri)

    added = paste_login(cli, "add", "acme-exact", "--definition", DEFINITION)
    assert added.exit_code == 0, added.stderr
    assert cli("show", "acme-exact", "--json").json()["token"]["attributes"]["tenant"] == (
        "1234567"
    )

    # Not yet in Exact's last 30 s: no call, and the time from which a refresh is possible.
    calls = len(exact.token_answers)
    early = cli("renew", "acme-exact", "--json")
    assert early.exit_code == 0 and early.json()["token"]["renewed_by"] == "not due"
    assert len(exact.token_answers) == calls

    # In the last 30 s: a refresh, rotated; the old refresh token is dead at Exact.
    exact.clock_offset += 580
    first_refresh = exact.grants()[-1].refresh_token
    renewed = cli("renew", "acme-exact", "--json")
    assert renewed.exit_code == 0, renewed.stderr
    assert renewed.json()["token"]["renewed_by"] == "refresh"
    assert exact.token_answers[-1] == ("refresh_token", 200, "ok")
    assert cli.stored("acme-exact").refresh_token == exact.grants()[-1].refresh_token  # type: ignore[union-attr]
    assert not exact.refresh_accepted(first_refresh)

    # `token` in the last 30 s refreshes too, and serves the new access token.
    exact.clock_offset += 580
    served = cli("token", "acme-exact")
    assert served.exit_code == 0, served.stderr
    assert served.stdout.strip() == exact.grants()[-1].access_token

    # Another copy of the integration used the refresh token: Exact answers 401
    # unauthorized_client "Old refresh token used." The token is invalid, check fails.
    stolen = cli.stored("acme-exact").refresh_token  # type: ignore[union-attr]
    exact.clock_offset += 580
    status, _body = exact.token(
        {
            "grant_type": "refresh_token",
            "refresh_token": stolen or "",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
        },
        None,
    )
    assert status == 200
    exact.clock_offset += 580
    refused = cli("renew", "acme-exact")
    assert refused.exit_code == 5, refused.stderr
    assert "Old refresh token used." in refused.stderr
    assert "tokenctl renew acme-exact --login" in refused.stderr
    shown = cli("show", "acme-exact", "--json").json()["token"]
    assert shown["status"] == "invalid"
    assert shown["invalid_reason"] == "refresh refused (unauthorized_client)"
    assert cli("check").exit_code == 11

    # A new login; then 31 days unused: Exact answers 400 invalid_request "The refresh
    # token expired at ...", which the definition names as dead too.
    again = paste_login(cli, "renew", "acme-exact", "--login")
    assert again.exit_code == 0, again.stderr
    assert cli("check").exit_code == 0
    exact.clock_offset += 31 * 24 * 3600
    expired = cli("renew", "acme-exact")
    assert expired.exit_code == 5, expired.stderr
    assert "The refresh token expired at" in expired.stderr
    assert cli("show", "acme-exact", "--json").json()["token"]["status"] == "invalid"
    # A new login; then the user removes the app's access in Exact: the refresh fails
    # (invalid_grant), the token is invalid and the hint says to log in again.
    relogged = paste_login(cli, "renew", "acme-exact", "--login")
    assert relogged.exit_code == 0, relogged.stderr
    exact.revoke()
    exact.clock_offset += 580
    revoked = cli("renew", "acme-exact")
    assert revoked.exit_code == 5, revoked.stderr
    assert "invalid_grant" in revoked.stderr
    assert "tokenctl renew acme-exact --login" in revoked.stderr
    assert cli("check").exit_code == 11

    # tokenctl never asked Exact too early, which Exact would have refused.
    assert not [answer for answer in exact.token_answers if answer[1] not in (200, 400, 401)]
    assert exact.token_answers.count(("refresh_token", 400, "invalid_request")) == 1


def test_dead_refresh_answers_match_code_and_text_only():
    from tokenctl.definitions.model import parse_definition

    table = tomllib.loads(exact_override("https://exact.example"))["definitions"][DEFINITION]
    settings = parse_definition(DEFINITION, table, "test").oauth2
    assert settings is not None
    assert settings.refresh_token_dead("invalid_grant", None)  # always dead
    assert settings.refresh_token_dead("unauthorized_client", "Old refresh token used.")
    assert settings.refresh_token_dead("invalid_request", "The refresh token expired at 1/2/2027")
    # The same codes for other reasons are ordinary failures: the token stays as it is.
    assert not settings.refresh_token_dead("unauthorized_client", "Unknown client")
    assert not settings.refresh_token_dead("invalid_request", "The access token is still valid.")
    assert not settings.refresh_token_dead("invalid_client", None)


@pytest.mark.parametrize(
    ("answers", "problem"),
    [
        ('"unauthorized_client"', "must be a list of tables"),
        ('[{ description = "x" }]', "each entry must be { error"),
        ('[{ error = "x", text = "y" }]', "unknown field 'text'"),
        ('[{ error = "x", description = "" }]', "description must be a non-empty string"),
    ],
)
def test_dead_refresh_answers_are_validated(cli, tmp_path, answers, problem):
    source = tmp_path / "acme.toml"
    source.write_text(
        '[definitions.acme]\ntitle = "Acme"\nkind = "oauth2"\n'
        '[definitions.acme.oauth2]\ntoken_endpoint = "https://acme.example/token"\n'
        f"dead_refresh_answers = {answers}\n"
    )
    result = cli("definitions", "add", "--file", str(source))
    assert result.exit_code == 1, result.stderr  # a configuration error (docs/exit-codes.md)
    assert "field 'oauth2.dead_refresh_answers'" in result.stderr and problem in result.stderr
