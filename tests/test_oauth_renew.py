"""Refresh, concurrency, probe, revocation, device and paste flows against oidc-provider."""

from __future__ import annotations

import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.fakes import sealed_rows
from tests.oauth_support import (
    PASTE_REDIRECT,
    ScriptedBrowser,
    configure,
    introspect,
    query_of,
    stored,
)
from tests.proc import tokenctl

pytestmark = pytest.mark.peers


def login(ocli, oidc, tmp_path, user="alice", client_id="tokenctl-public", **extra):  # type: ignore[no-untyped-def]
    name = configure(ocli, tmp_path, oidc, client_id, **extra)
    ocli.browser = ScriptedBrowser(oidc, user=user, password=f"{user}-password")
    result = ocli("add", "acme", "--definition", name, "--yes")
    assert result.exit_code == 0, result.stderr
    return name


def test_renew_refreshes_without_a_browser_and_rotates(ocli, oidc, tmp_path):
    login(ocli, oidc, tmp_path)
    before = stored(ocli)
    ocli.browser = None  # a browser would be an error now
    result = ocli("renew", "acme")
    assert result.exit_code == 0, result.stderr
    assert "refreshed without a browser" in result.stderr
    after = stored(ocli)
    assert after.access_token != before.access_token
    assert after.refresh_token != before.refresh_token  # the provider rotates
    assert after.id_token  # the refresh response may carry a new one; it is never dropped
    assert introspect(oidc, after.access_token)["active"] is True
    token = ocli("show", "acme", "--json").json()["token"]
    assert token["history"][0]["event"] == "renewed"
    assert "rotated" in token["history"][0]["detail"]
    assert token["account"] == "alice@example.test"


def test_eight_processes_refreshing_at_once_keep_the_grant(tmp_path, oidc, real_keyring):
    from tests.fakes import Cli
    from tests.oauth_support import RealClock
    from tokenctl.secrets.keyring_store import OsKeyring

    home = tmp_path / "home"
    cli = Cli(home=home, clock=RealClock(), keyring=OsKeyring())  # type: ignore[arg-type]
    login(cli, oidc, tmp_path)
    env = real_keyring.child_env()
    before = stored(cli)
    oidc.reset_stats()
    barrier = threading.Barrier(8)

    def renew(_: int):  # type: ignore[no-untyped-def]
        barrier.wait()
        return tokenctl("renew", "acme", home=home, env=env)

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(renew, range(8)))
    assert [r.exit_code for r in results] == [0] * 8, [r.stderr for r in results]
    stats = oidc.stats()
    assert stats["grant_error"].get("refresh_token", 0) == 0, stats
    served = stats["grant_success"].get("refresh_token", 0)
    assert 1 <= served <= 8
    # Those that waited for the lock used the token another process had just stored.
    waited = sum("already renewed by another tokenctl process" in r.stderr for r in results)
    assert waited == 8 - served
    after = stored(cli)
    assert after.refresh_token != before.refresh_token
    # The grant survived: the newest tokens work, and one more refresh succeeds.
    assert introspect(oidc, after.access_token)["active"] is True
    final = tokenctl("renew", "acme", home=home, env=env)
    assert final.exit_code == 0, final.stderr
    for result in [*results, final]:
        assert after.refresh_token not in result.stdout + result.stderr


def test_grant_revoked_at_the_provider_is_found_by_the_probe(ocli, oidc, tmp_path):
    login(ocli, oidc, tmp_path, user="dave")
    probed = ocli("show", "acme", "--probe", "--json")
    assert probed.exit_code == 0, probed.stderr
    assert probed.json()["token"]["probe"]["result"] == "valid"
    oidc.revoke_user_grants("dave")
    # Not expired by date, yet invalid: only the provider can tell.
    assert ocli("list", "--json").json()["tokens"][0]["status"] == "valid"
    probed = ocli("show", "acme", "--probe", "--json").json()["token"]
    assert probed["probe"]["result"] == "invalid"
    assert probed["status"] == "invalid" and probed["probe_result"] == "invalid"
    assert probed["history"][0]["event"] == "probed"
    assert ocli("list", "--status", "invalid", "--json").json()["tokens"][0]["name"] == "acme"
    renewed = ocli("renew", "acme")
    assert renewed.exit_code == 5
    assert "invalid_grant" in renewed.stderr
    assert "tokenctl renew acme --login" in renewed.stderr


def test_delete_revokes_at_the_provider(ocli, oidc, tmp_path):
    login(ocli, oidc, tmp_path)
    secrets = stored(ocli)
    assert introspect(oidc, secrets.refresh_token)["active"] is True
    result = ocli("delete", "acme", "--yes")
    assert result.exit_code == 0, result.stderr
    assert "Revoked at the provider: the provider confirmed the revocation" in result.stderr
    assert introspect(oidc, secrets.refresh_token)["active"] is False
    assert introspect(oidc, secrets.access_token)["active"] is False
    assert result.stdout.startswith("tokenctl add acme --definition acme-books")
    assert sealed_rows(ocli.home) == []  # its secrets went with the record


def test_delete_no_revoke_and_unreachable_provider(ocli, oidc, tmp_path):
    login(ocli, oidc, tmp_path)
    secrets = stored(ocli)
    result = ocli("delete", "acme", "--yes", "--no-revoke")
    assert result.exit_code == 0
    assert "Revoked" not in result.stderr
    assert introspect(oidc, secrets.refresh_token)["active"] is True
    # A definition whose revocation endpoint is down: warn, delete locally anyway.
    login(ocli, oidc, tmp_path, revocation_endpoint="http://127.0.0.1:9/revoke")
    result = ocli("delete", "acme", "--yes")
    assert result.exit_code == 0
    assert "not revoked at the provider" in result.stderr
    assert ocli("show", "acme").exit_code == 3


def test_account_change_is_refused_unless_allowed(ocli, oidc, tmp_path):
    login(ocli, oidc, tmp_path)
    before = stored(ocli)
    ocli.browser = ScriptedBrowser(oidc, user="erin", password="erin-password")
    refused = ocli("renew", "acme", "--login", "--yes")
    assert refused.exit_code == 5
    assert "signed in as 'erin@example.test'" in refused.stderr
    assert "the new grant was revoked" in refused.stderr
    assert "Expected account: alice@example.test" in refused.stderr
    assert stored(ocli) == before
    assert ocli("show", "acme", "--json").json()["token"]["account"] == "alice@example.test"
    assert [
        g
        for g in oidc.grants("erin")
        if g.get("client_id") == "tokenctl-public" and g.get("tokens")
    ] == []
    ocli.browser = ScriptedBrowser(oidc, user="erin", password="erin-password")
    allowed = ocli("renew", "acme", "--login", "--yes", "--allow-account-change")
    assert allowed.exit_code == 0, allowed.stderr
    assert ocli("show", "acme", "--json").json()["token"]["account"] == "erin@example.test"


def test_login_needed_without_a_terminal_is_exit_5_with_the_command(ocli, oidc, tmp_path):
    scopes = ["openid", "email", "invoices:read", "invoices:write"]  # no offline_access
    login(ocli, oidc, tmp_path, scopes=scopes)
    assert ocli("show", "acme", "--json").json()["token"]["has_refresh_token"] is False
    result = ocli("renew", "acme")
    assert result.exit_code == 5
    assert "no refresh token" in result.stderr
    assert "tokenctl renew acme --login" in result.stderr


def test_device_flow(ocli, oidc, tmp_path):
    name = configure(ocli, tmp_path, oidc)
    approved: list[str] = []

    def device_browser(url: str) -> None:
        code = query_of(url)["user_code"]
        approved.append(oidc.device_approve(code, "alice", "alice-password"))

    ocli.browser = device_browser
    result = ocli("add", "acme", "--definition", name, "--device", "--yes")
    assert result.exit_code == 0, result.stderr
    assert approved == ["device-success"]
    assert "Enter the code" in result.stderr
    token = ocli("show", "acme", "--json").json()["token"]
    assert token["account"] == "alice@example.test" and token["has_refresh_token"] is True


def test_device_flow_denied(ocli, oidc, tmp_path):
    name = configure(ocli, tmp_path, oidc)
    ocli.browser = lambda url: oidc.device_approve(
        query_of(url)["user_code"], "alice", "alice-password", approve=False
    )
    result = ocli("add", "acme", "--definition", name, "--device", "--yes")
    assert result.exit_code == 5
    assert "denied" in result.stderr


def test_device_polling_honours_slow_down_and_expiry(monkeypatch):
    from tokenctl.oauth import provider

    answers = iter(["authorization_pending", "slow_down", "authorization_pending", "ok"])
    slept: list[float] = []

    def fake_fetch(credentials, endpoints, device, transport=None):  # type: ignore[no-untyped-def]
        answer = next(answers)
        if answer == "ok":
            return {"access_token": "a", "token_type": "Bearer"}
        raise provider.OAuthFailure(answer, None)

    monkeypatch.setattr(provider, "_fetch_device_token", fake_fetch)
    device = provider.DeviceAuthorization("d", "USER-CODE", "https://x/device", None, 600, 2)
    credentials = provider.ClientCredentials("c")
    endpoints = provider.Endpoints(None, None, "https://x/token")
    clock = iter(range(0, 10_000, 1))
    result = provider.poll_device_token(
        credentials, endpoints, device, sleep=slept.append, clock=lambda: float(next(clock))
    )
    assert result["access_token"] == "a"
    assert slept == [2, 2, 7, 7]

    answers = iter(["expired_token"])
    monkeypatch.setattr(provider, "_fetch_device_token", fake_fetch)
    with pytest.raises(provider.AuthorizationError, match="expired"):
        provider.poll_device_token(
            credentials, endpoints, device, sleep=slept.append, clock=lambda: 0.0
        )


def paste_login(ocli: Any, oidc: Any, tmp_path: Path, appended: str = "") -> Any:
    """``add --paste``: the browser signs in and the redirected URL (+ ``appended``) is pasted."""
    name = configure(ocli, tmp_path, oidc, "tokenctl-paste", redirect_uri=PASTE_REDIRECT)
    read_end, write_end = os.pipe()

    def paste_browser(url: str) -> None:
        final = oidc.browser_login(url, "alice", "alice-password", follow_to_callback=False)
        assert "iss=" in final
        os.write(write_end, (final + appended + "\n").encode())

    ocli.browser = paste_browser
    with os.fdopen(read_end) as stdin:
        result = ocli("add", "acme", "--definition", name, "--paste", "--yes", input=stdin)
    os.close(write_end)
    return result


def test_paste_mode(ocli, oidc, tmp_path):
    result = paste_login(ocli, oidc, tmp_path)
    assert result.exit_code == 0, result.stderr
    assert f"The browser then lands on {PASTE_REDIRECT}" in result.stderr
    assert ocli("show", "acme", "--json").json()["token"]["account"] == "alice@example.test"


def test_paste_mode_rejects_a_url_with_a_parameter_twice(ocli, oidc, tmp_path):
    # The real callback with a second iss appended: taking the first copy would accept it.
    result = paste_login(ocli, oidc, tmp_path, appended="&iss=https%3A%2F%2Fevil.example")
    assert result.exit_code == 5, result.stderr
    assert "The iss parameter appears more than once" in result.stderr
    assert ocli("list", "--json").json()["tokens"] == []


def test_paste_mode_rejects_a_url_of_another_login(ocli, oidc, tmp_path):
    name = configure(ocli, tmp_path, oidc, "tokenctl-paste", redirect_uri=PASTE_REDIRECT)
    result = ocli(
        "add",
        "acme",
        "--definition",
        name,
        "--paste",
        "--yes",
        "--no-browser",
        input=f"{PASTE_REDIRECT}?code=x&state=not-this-one&iss={oidc.issuer}\n",
    )
    assert result.exit_code == 5
    assert "state parameter" in result.stderr


def test_definition_from_discovery(ocli, oidc):
    added = ocli(
        "definitions",
        "add",
        "books",
        "--issuer",
        oidc.issuer,
        "--client-id",
        "tokenctl-public",
        "--title",
        "Books",
        "--scope",
        "openid",
        "--scope",
        "offline_access",
        "--scope",
        "email",
    )
    assert added.exit_code == 0, added.stderr
    shown = ocli("definitions", "show", "books", "--json").json()["definition"]
    oauth = shown["oauth2"]
    assert oauth["token_endpoint"] == f"{oidc.issuer}/token"
    assert oauth["device_authorization_endpoint"] == f"{oidc.issuer}/device/auth"
    assert oauth["revocation_endpoint"] and oauth["jwks_uri"]
    assert shown["kind"] == "oauth2" and shown["title"] == "Books"
    ocli.browser = ScriptedBrowser(oidc)
    result = ocli("add", "acme", "--definition", "books", "--yes")
    assert result.exit_code == 0, result.stderr
    bad = ocli("definitions", "add", "nope", "--issuer", "http://127.0.0.1:9")
    assert bad.exit_code == 1 and "could not reach" in bad.stderr


def test_client_secret_is_sealed_in_the_inventory_only(ocli, oidc, tmp_path):
    from tokenctl.inventory.sqlite import SqliteInventory

    configure(ocli, tmp_path, oidc, "tokenctl-basic")
    assert "tokenctl-basic-secret" not in (ocli.home / "definitions.toml").read_text()
    assert b"tokenctl-basic-secret" not in (ocli.home / "inventory.sqlite3").read_bytes()
    inventory = SqliteInventory(ocli.home / "inventory.sqlite3", lambda: ocli.keyring)
    try:
        assert inventory.client_secret("acme-books", "tokenctl-basic") == "tokenctl-basic-secret"
    finally:
        inventory.close()
    assert list(ocli.keyring.entries) == [f"inventory-{inventory.inventory_id}"]


def test_probe_by_introspection_and_unreachable(ocli, oidc, tmp_path):
    explicit = {
        "authorization_endpoint": f"{oidc.issuer}/auth",
        "token_endpoint": f"{oidc.issuer}/token",
        "jwks_uri": f"{oidc.issuer}/jwks",
        "introspection_endpoint": f"{oidc.issuer}/token/introspection",
        "iss_parameter_supported": True,  # everything given: no discovery at all
    }
    login(ocli, oidc, tmp_path, client_id="tokenctl-basic", **explicit)
    shown = ocli("definitions", "show", "acme-books", "--json").json()["definition"]["oauth2"]
    assert shown["userinfo_endpoint"] is None  # so the probe must use introspection
    probed = ocli("show", "acme", "--probe", "--json").json()["token"]["probe"]
    assert probed == {"result": "valid", "detail": "introspection: active"}
    ocli("delete", "acme", "--yes", "--no-revoke")
    login(ocli, oidc, tmp_path, probe_url="http://127.0.0.1:9/me")
    unreachable = ocli("show", "acme", "--probe", "--json").json()["token"]
    assert unreachable["probe"]["result"] == "unreachable"
    assert unreachable["status"] == "valid"  # not reachable is not invalid
    assert unreachable["probe_result"] == "unreachable" and unreachable["probed_at"]


def test_id_token_is_checked_against_nonce_and_audience(ocli, oidc, tmp_path):
    from tokenctl.errors import AuthorizationError
    from tokenctl.oauth.provider import resolve_endpoints, validate_id_token

    login(ocli, oidc, tmp_path)
    id_token = stored(ocli).id_token
    from tokenctl.definitions.registry import load_definitions

    endpoints = resolve_endpoints(
        load_definitions(ocli.home / "definitions.toml").require("acme-books")
    )
    claims = validate_id_token(
        id_token, endpoints=endpoints, client_id="tokenctl-public", nonce=None, access_token=None
    )
    assert claims["sub"] == "alice"
    with pytest.raises(AuthorizationError, match="id token failed validation"):
        validate_id_token(
            id_token, endpoints=endpoints, client_id="someone-else", nonce=None, access_token=None
        )
    with pytest.raises(AuthorizationError, match="id token failed validation"):
        validate_id_token(
            id_token,
            endpoints=endpoints,
            client_id="tokenctl-public",
            nonce="not-the-nonce-of-this-login",
            access_token=None,
        )
    tampered = id_token[:-4] + ("AAAA" if not id_token.endswith("AAAA") else "BBBB")
    with pytest.raises(AuthorizationError, match="id token failed validation"):
        validate_id_token(
            tampered,
            endpoints=endpoints,
            client_id="tokenctl-public",
            nonce=None,
            access_token=None,
        )


def test_oauth_secrets_are_never_in_plaintext_in_any_file(tmp_path, oidc, real_keyring):
    """Not in the inventory, its -wal or journal, config, caches or output; the real
    keyring holds one entry for the home: the data key."""
    import sqlite3

    from tests.fakes import Cli
    from tests.oauth_support import RealClock
    from tokenctl.secrets.keyring_store import OsKeyring

    home = tmp_path / "home"
    cli = Cli(home=home, clock=RealClock(), keyring=OsKeyring())  # type: ignore[arg-type]
    configure(cli, tmp_path, oidc, "tokenctl-post")
    # A reader held open keeps the write-ahead log on disk with every frame written.
    reader = sqlite3.connect(home / "inventory.sqlite3")
    reader.execute("SELECT count(*) FROM sqlite_master").fetchall()
    cli.browser = ScriptedBrowser(oidc)
    outputs = [cli("add", "acme", "--definition", "acme-books", "--yes")]
    first = cli.stored("acme")
    outputs.append(cli("renew", "acme"))
    outputs.append(cli("show", "acme", "--probe", "--json"))
    outputs.append(cli("list", "--json"))
    env = real_keyring.child_env()
    outputs.append(tokenctl("renew", "acme", "--json", home=home, env=env))
    assert all(o.exit_code == 0 for o in outputs), [o.stderr for o in outputs]
    last = cli.stored("acme")
    assert first is not None and last is not None
    values = [
        value
        for secrets in (first, last)
        for value in (secrets.access_token, secrets.refresh_token, secrets.id_token)
        if value and len(value) > 12
    ]
    values.append("tokenctl-post-secret")
    assert len(values) >= 6
    key_entry = cli("show", "acme", "--json").json()["token"]["secret"]["key_entry"]
    data_key = json.loads(real_keyring.lookup("tokenctl", key_entry))["keys"]
    files = [p for p in home.rglob("*") if p.is_file()]
    assert home / "inventory.sqlite3-wal" in files
    texts = [o.stdout + o.stderr for o in outputs] + [
        p.read_bytes().decode("latin-1") for p in files
    ]
    for value in [*values, *data_key.values()]:
        for text in texts:
            assert value not in text
    reader.close()
    # `secret-tool search service tokenctl`: one entry, however many tokens.
    assert [item.attributes["username"] for item in real_keyring.items("tokenctl")] == [key_entry]


def test_device_polling_gives_up_at_the_timeout(monkeypatch):
    from tokenctl.oauth import provider

    def pending(credentials, endpoints, device, transport=None):  # type: ignore[no-untyped-def]
        raise provider.OAuthFailure("authorization_pending", None)

    monkeypatch.setattr(provider, "_fetch_device_token", pending)
    device = provider.DeviceAuthorization("d", "CODE", "https://x/device", None, 600, 1)
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    with pytest.raises(provider.AuthorizationError, match="no approval arrived within 3 s"):
        provider.poll_device_token(
            provider.ClientCredentials("c"),
            provider.Endpoints(None, None, "https://x/token"),
            device,
            sleep=sleep,
            clock=lambda: now[0],
            timeout=3,
        )
    assert now[0] == 4  # polled at 1, 2, 3 s, then gave up


def test_unsafe_id_token_algorithms_are_never_accepted():
    from tokenctl.oauth.provider import _asymmetric

    assert _asymmetric(["none", "HS256", "RS256", "ES256"]) == ("RS256", "ES256")
    assert _asymmetric(["none"]) == ("RS256",)
    assert _asymmetric(None) == ("RS256",)


def test_a_malformed_token_response_is_a_provider_error():
    from datetime import UTC, datetime

    from tokenctl.definitions.model import OAuth2Settings
    from tokenctl.oauth.provider import ProviderUnreachable, grant_from_response

    now = datetime.now(UTC)
    with pytest.raises(ProviderUnreachable):
        grant_from_response({"token_type": "Bearer"}, now, (), OAuth2Settings())
    # A malformed lifetime costs only that lifetime (tests/test_lifetimes.py).
    grant = grant_from_response(
        {"access_token": "a", "expires_in": "soon"}, now, (), OAuth2Settings()
    )
    assert grant.expires_at is None and "unusable lifetime" in grant.notes[0]


def test_a_busy_fixed_port_is_a_usage_error(ocli, oidc, tmp_path):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        configure(ocli, tmp_path, oidc, redirect_port=port)
        result = ocli("add", "acme", "--definition", "acme-books", "--yes")
    assert result.exit_code == 2 and f"cannot listen on 127.0.0.1:{port}" in result.stderr


def test_renew_all_goes_on_past_a_token_it_cannot_renew(ocli, oidc, tmp_path):
    login(ocli, oidc, tmp_path)
    assert ocli("add", "later", "--definition", "acme-books", "--no-login").exit_code == 0
    result = ocli("renew", "--all", "--json")
    assert result.exit_code == 1
    outcomes = {i["name"]: i["outcome"] for i in result.json()["renewals"]}
    assert outcomes == {"acme": "refreshed", "later": "needs-login"}


def test_renew_all_fails_only_the_token_whose_sealed_secrets_do_not_open(ocli, oidc, tmp_path):
    import sqlite3

    login(ocli, oidc, tmp_path)
    ocli.browser = ScriptedBrowser(oidc)
    assert ocli("add", "second", "--definition", "acme-books", "--yes").exit_code == 0
    connection = sqlite3.connect(ocli.home / "inventory.sqlite3", isolation_level=None)
    connection.execute("UPDATE token_secrets SET refresh_token = x'00' WHERE number = 1")
    connection.close()
    result = ocli("renew", "--all", "--json")
    assert result.exit_code == 1
    items = {i["name"]: i for i in result.json()["renewals"]}
    assert items["second"]["outcome"] == "refreshed"
    assert items["acme"]["outcome"] == "failed"
    assert "token #1 'acme' cannot be opened" in items["acme"]["detail"]
    # The way back: a login stores a new token set.
    ocli.browser = ScriptedBrowser(oidc)
    again = ocli("renew", "acme", "--login", "--yes")
    assert again.exit_code == 0, again.stderr
    assert ocli("renew", "--all", "--json").exit_code == 0


def test_three_renew_all_processes_over_the_same_tokens_keep_every_grant(
    tmp_path, oidc, real_keyring
):
    """`renew --all` in three processes at once over the same 10 tokens, at a provider that
    rotates refresh tokens and revokes a grant whose used one comes back: the inventory
    steps of each run on its event loop and wait there for the others' write locks;
    every run ends 0, every token is refreshed or found renewed meanwhile, no grant is
    lost, and one more run refreshes every token with what was stored."""
    from tests.fakes import Cli
    from tests.oauth_support import RealClock
    from tokenctl.secrets.keyring_store import OsKeyring

    home = tmp_path / "home"
    cli = Cli(home=home, clock=RealClock(), keyring=OsKeyring())  # type: ignore[arg-type]
    name = configure(cli, tmp_path, oidc)
    cli.browser = ScriptedBrowser(oidc, user="alice", password="alice-password")
    names = [f"t{index}" for index in range(10)]
    for token in names:
        added = cli("add", token, "--definition", name, "--yes")
        assert added.exit_code == 0, added.stderr
    cli.browser = None
    before = {token: stored(cli, token).refresh_token for token in names}
    env = real_keyring.child_env()
    oidc.reset_stats()
    barrier = threading.Barrier(3)

    def renew_all(_: int):  # type: ignore[no-untyped-def]
        barrier.wait()
        return tokenctl("renew", "--all", "--json", "--concurrency", "4", home=home, env=env)

    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(renew_all, range(3)))
    assert [r.exit_code for r in results] == [0, 0, 0], [r.stderr for r in results]
    outcomes: dict[str, set[str]] = {token: set() for token in names}
    for result in results:
        for item in json.loads(result.stdout)["renewals"]:
            outcomes[item["name"]].add(item["outcome"])
    assert all(seen <= {"refreshed", "concurrent"} for seen in outcomes.values()), outcomes
    assert all("refreshed" in seen for seen in outcomes.values()), outcomes
    stats = oidc.stats()
    assert stats["grant_error"].get("refresh_token", 0) == 0, stats
    after = {token: stored(cli, token).refresh_token for token in names}
    assert all(after[token] != before[token] for token in names)
    final = tokenctl("renew", "--all", "--json", home=home, env=env)
    assert final.exit_code == 0, final.stderr
    assert {i["outcome"] for i in json.loads(final.stdout)["renewals"]} == {"refreshed"}
