"""Xero end to end: real ``tokenctl`` processes against the Xero double (tests/peers/xero.py).

The double is reached through the BUILT-IN ``xero`` definition: the test home's
definitions.toml holds a copy of it with Xero's three hosts replaced by the double's URL
(as a user would override it), and ``definitions configure`` sets the client id and the
port registered at the double, as the built-in's setup notes say.
"""

from __future__ import annotations

import json
import socket
import tomllib
import urllib.request
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from tests.oauth_support import fetch
from tests.peers.xero import GRACE_SECONDS, XeroDouble, XeroUser, start_xero_double
from tests.proc import Proc, tokenctl
from tests.test_oauth_chromium import browser_env, with_browser

CLIENT_ID = "xero-pkce-app"
ACME = {"tenantId": "0f3a7c5e-5a0b-4d4e-9c4e-1d2f3a4b5c6d", "tenantName": "Acme Ltd"}
HOLDINGS = {"tenantId": "7b1d2e3f-4a5b-4c6d-8e9f-0a1b2c3d4e5f", "tenantName": "Acme Holdings"}
XERO_HOSTS = ("https://login.xero.com", "https://identity.xero.com", "https://api.xero.com")


def free_port() -> int:
    """A port free on 127.0.0.1 now (the port "registered" at the double)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def xero() -> Iterator[tuple[XeroDouble, int]]:
    """The double with alice (two organisations) and a PKCE app registered on localhost:PORT."""
    port = free_port()
    double = start_xero_double()
    double.register_client(CLIENT_ID, [f"http://localhost:{port}/callback"])
    double.add_user(
        "alice",
        XeroUser("alice-password", "alice@acme.example", "Alice", "Acme", [ACME, HOLDINGS]),
    )
    try:
        yield double, port
    finally:
        double.stop()


def builtin_xero() -> dict[str, Any]:
    """The built-in ``xero`` table, as shipped."""
    text = resources.files("tokenctl.definitions").joinpath("builtin.toml").read_text()
    table: dict[str, Any] = tomllib.loads(text)["definitions"]["xero"]
    return table


def write_override(home: Path, double: XeroDouble, **oauth: Any) -> None:
    """definitions.toml: the built-in with Xero's hosts pointed at the double."""
    table = builtin_xero()
    settings = table["oauth2"]
    for key, value in list(settings.items()):
        if isinstance(value, str):
            for host in XERO_HOSTS:
                value = value.replace(host, double.url)
            settings[key] = value
    settings.update(oauth)
    home.mkdir(parents=True, exist_ok=True)
    (home / "definitions.toml").write_text(tomli_w.dumps({"definitions": {"xero": table}}))


def run(*args: str, home: Path, env: dict[str, str]) -> Proc:
    """A tokenctl process; never a traceback, whatever the exit code."""
    proc = tokenctl(*args, home=home, env=env)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def setup_home(tmp_path: Path, double: XeroDouble, port: int, env: dict[str, str]) -> Path:
    home = tmp_path / "home"
    write_override(home, double)
    configured = run(
        "definitions", "configure", "xero", "--client-id", CLIENT_ID,
        "--redirect-port", str(port), home=home, env=env,
    )  # fmt: skip
    assert configured.exit_code == 0, configured.stderr
    return home


def login(tmp_path: Path, name: str, *args: str, home: Path, env: dict[str, str]) -> Proc:
    """A command whose browser login headless Chromium does (a fresh driver out dir)."""
    out = tmp_path / f"browser-{name}"
    proc, driver, log = with_browser(
        *args, home=home, env=browser_env(env, out, "alice", "alice-password"), out=out
    )
    assert proc.exit_code == 0, f"{proc.stderr}\n--- driver.log\n{log}"
    assert driver["final"] == "ok", log
    return proc


def connections(double: XeroDouble, access_token: str) -> int:
    """The status of GET /connections with ``access_token`` (as an API client would)."""
    request = urllib.request.Request(
        f"{double.url}/connections", headers={"Authorization": f"Bearer {access_token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def token_json(home: Path, env: dict[str, str], name: str = "acme") -> dict[str, Any]:
    shown = run("show", name, "--json", home=home, env=env)
    assert shown.exit_code == 0, shown.stderr
    token: dict[str, Any] = shown.json()["token"]
    return token


@pytest.mark.peers
def test_xero_lifecycle_through_the_builtin(tmp_path, xero, real_keyring, chromium):
    double, port = xero
    env = real_keyring.child_env()
    home = setup_home(tmp_path, double, port, env)

    # add: loopback on localhost:<registered port>, PKCE, no secret, the tenant picked.
    added = login(
        tmp_path, "add", "add", "acme", "--definition", "xero", "--tenant", "Acme Ltd",
        home=home, env=env,
    )  # fmt: skip
    assert f"Listening for the login on http://localhost:{port}/callback" in added.stderr
    [request] = double.authorize_requests
    assert request["redirect_uri"] == f"http://localhost:{port}/callback"
    assert request["code_challenge_method"] == "S256" and "client_secret" not in request
    assert set(request["scope"].split(" ")) == set(builtin_xero()["oauth2"]["scopes"])
    assert [(c.grant_type, c.outcome) for c in double.token_calls] == [
        ("authorization_code", "issued")
    ]

    # list and show: the organisation from GET /connections is recorded and shown.
    listed = run("list", "--json", home=home, env=env).json()["tokens"]
    assert [(t["name"], t["status"]) for t in listed] == [("acme", "valid")]
    assert "Acme Ltd" in run("list", home=home, env=env).stdout
    token = token_json(home, env)
    assert token["account"] == "alice@acme.example"
    assert token["attributes"]["tenant"] == "Acme Ltd"
    assert token["attributes"]["tenant_id"] == ACME["tenantId"]
    assert token["has_refresh_token"] is True
    assert {"accounting.invoices", "accounting.contacts", "offline_access"} <= set(
        token["granted_scopes"]
    )
    assert "Acme Ltd" in run("show", "acme", home=home, env=env).stdout

    # renew twice: the second refresh presents the refresh token the first one returned.
    for _ in range(2):
        renewed = run("renew", "acme", home=home, env=env)
        assert renewed.exit_code == 0, renewed.stderr
    first, second = (c for c in double.token_calls if c.grant_type == "refresh_token")
    assert first.outcome == second.outcome == "issued"
    assert first.refresh_token != second.refresh_token  # the rotated one was stored
    assert double.refresh_token_state(first.refresh_token or "") == "grace"

    # token and check --probe: the access token works at the API.
    access = run("token", "acme", home=home, env=env)
    assert access.exit_code == 0, access.stderr
    assert connections(double, access.stdout.strip()) == 200
    probed = run("check", "--probe", home=home, env=env)
    assert probed.exit_code == 0, probed.stdout + probed.stderr

    # A refresh whose answer was lost: the old refresh token works inside the grace period.
    double.lose_next_refresh_answer()
    assert run("renew", "acme", home=home, env=env).exit_code == 1  # no answer: unreachable
    retried = run("renew", "acme", home=home, env=env)
    assert retried.exit_code == 0, retried.stderr
    assert double.token_calls[-1].outcome == "grace"
    assert double.token_calls[-1].refresh_token == double.token_calls[-2].refresh_token

    # ... and not after it: invalid_grant, the token marked invalid, check 11 with the hint.
    double.lose_next_refresh_answer()
    assert run("renew", "acme", home=home, env=env).exit_code == 1
    double.advance(GRACE_SECONDS + 60)
    refused = run("renew", "acme", home=home, env=env)
    assert refused.exit_code == 5, refused.stderr
    assert "invalid_grant" in refused.stderr
    assert "tokenctl renew acme --login" in refused.stderr
    assert token_json(home, env)["status"] == "invalid"
    checked = run("check", home=home, env=env)
    assert checked.exit_code == 11, checked.stdout + checked.stderr
    assert "tokenctl renew acme --login" in checked.stdout

    # The hint's login makes it valid again; then Xero revokes (the user disconnects the app).
    login(
        tmp_path, "relogin", "renew", "acme", "--login", "--tenant", "Acme Ltd", home=home, env=env
    )
    assert token_json(home, env)["status"] == "valid"
    double.disconnect("alice")
    revoked = run("renew", "acme", home=home, env=env)
    assert revoked.exit_code == 5 and "invalid_grant" in revoked.stderr, revoked.stderr
    assert "tokenctl renew acme --login" in revoked.stderr
    after = run("check", home=home, env=env)
    assert after.exit_code == 11 and "tokenctl renew acme --login" in after.stdout

    # delete revokes at the double: the grant of the last login is gone there.
    login(tmp_path, "third", "renew", "acme", "--login", "--tenant", "Acme Ltd", home=home, env=env)
    assert len(double.live_grants("alice")) == 1
    deleted = run("delete", "acme", "--yes", home=home, env=env)
    assert deleted.exit_code == 0, deleted.stderr
    assert double.revocations, "delete did not call the revocation endpoint"
    assert double.live_grants("alice") == []
    assert run("show", "acme", home=home, env=env).exit_code == 3


@pytest.mark.peers
def test_the_registered_port_taken_is_a_clear_error(tmp_path, xero, real_keyring):
    double, port = xero
    env = real_keyring.child_env()
    home = setup_home(tmp_path, double, port, env)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        proc = run(
            "add", "acme", "--definition", "xero", "--yes", "--no-browser", home=home, env=env
        )
    assert proc.exit_code == 2, proc.stderr
    assert f"cannot listen on 127.0.0.1:{port} for the login callback" in proc.stderr
    assert "in use by another program" in proc.stderr
    assert "tokenctl definitions configure xero --client-id ID --redirect-port PORT" in proc.stderr
    assert double.authorize_requests == []  # nothing was opened
    assert run("list", "--json", home=home, env=env).json()["tokens"] == []


# -- in process, with a browser over plain HTTP ---------------------------------------------


def http_browser(double: XeroDouble, pages: list[tuple[int, str]]) -> Any:
    """Signs in at the double and follows its redirect to the callback, like a browser."""

    def browse(url: str) -> None:
        status, location = double.browser_login(url, "alice", "alice-password")
        pages.append((status, location))
        if status == 302:
            pages.append(fetch(location))

    return browse


def configure_in_process(ocli: Any, double: XeroDouble, port: int, **oauth: Any) -> None:
    write_override(ocli.home, double, **oauth)
    result = ocli(
        "definitions", "configure", "xero", "--client-id", CLIENT_ID, "--redirect-port", str(port)
    )
    assert result.exit_code == 0, result.stderr


def test_without_offline_access_xero_gives_no_refresh_token(ocli, xero):
    double, port = xero
    scopes = [s for s in builtin_xero()["oauth2"]["scopes"] if s != "offline_access"]
    configure_in_process(ocli, double, port, scopes=scopes)
    pages: list[tuple[int, str]] = []
    ocli.browser = http_browser(double, pages)
    result = ocli("add", "acme", "--definition", "xero", "--yes", "--tenant", "Acme Ltd")
    assert result.exit_code == 0, result.stderr
    token = ocli("show", "acme", "--json").json()["token"]
    assert token["has_refresh_token"] is False
    # The built-in requires offline_access: such a token is flagged, not silently kept.
    assert token["status"] == "insufficient" and "offline_access" in result.stderr


def test_xero_refuses_the_127_0_0_1_redirect_it_did_not_register(ocli, xero):
    double, port = xero
    configure_in_process(ocli, double, port, redirect_host="127.0.0.1")
    pages: list[tuple[int, str]] = []
    ocli.browser = http_browser(double, pages)
    result = ocli("add", "acme", "--definition", "xero", "--yes", "--timeout", "2")
    assert result.exit_code == 5 and "no login arrived" in result.stderr
    [(status, body)] = pages
    assert status == 400 and "Invalid redirect_uri" in body
    assert double.authorize_requests[0]["redirect_uri"] == f"http://127.0.0.1:{port}/callback"


def test_several_organisations_without_tenant_records_them_all(ocli, xero):
    double, port = xero
    configure_in_process(ocli, double, port)
    ocli.browser = http_browser(double, [])
    result = ocli("add", "acme", "--definition", "xero", "--yes")
    assert result.exit_code == 0, result.stderr
    attributes = ocli("show", "acme", "--json").json()["token"]["attributes"]
    assert attributes["tenants"] == "Acme Ltd, Acme Holdings"
    listing = json.loads(fetch(f"{double.url}/connections")[1])
    assert listing == {"Title": "Unauthorized", "Status": 401}  # no token, no tenants
