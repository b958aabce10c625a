"""Login modes and per-provider quirks: relay (hosted page + Chromium), tenants, attributes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.loopback import serving_directory
from tests.oauth_support import ScriptedBrowser, configure
from tests.proc import tokenctl
from tests.test_oauth_chromium import browser_env, with_browser

pytestmark = pytest.mark.peers


@pytest.fixture
def static_site(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A plain HTTP server on 127.0.0.1 serving a directory (the organisation's web site)."""
    root = tmp_path / "site"
    root.mkdir()
    with serving_directory(root) as port:
        yield f"http://127.0.0.1:{port}", root


def test_relay_page_is_static_and_forwards_only_to_loopback(cli):
    result = cli("definitions", "relay-page")
    assert result.exit_code == 0
    page = result.stdout
    assert page.startswith("<!doctype html>")
    assert '"http://127.0.0.1:" + port + "/callback"' in page
    assert "src=" not in page and "https://" not in page  # nothing loaded from elsewhere
    assert 'content="no-referrer"' in page
    fixed = cli("definitions", "relay-page", "--port", "8765").stdout
    assert "var fixedPort = 8765;" in fixed
    assert cli("definitions", "relay-page", "--port", "80").exit_code == 2


def test_relay_mode_end_to_end_in_headless_chromium(
    tmp_path, oidc, real_keyring, chromium, static_site
):
    site_url, site_root = static_site
    (site_root / "relay").mkdir()
    home = tmp_path / "home"
    env = browser_env(real_keyring.child_env(), tmp_path / "browser", "alice", "alice-password")
    page = tokenctl("definitions", "relay-page", home=home, env=env)
    (site_root / "relay" / "callback.html").write_text(page.stdout)
    relay_uri = f"{site_url}/relay/callback.html"
    from tests.oauth_support import definition_toml

    source = tmp_path / "relay.toml"
    source.write_text(
        definition_toml(
            "acme-relay", oidc.issuer, "tokenctl-relay", login_mode="relay", redirect_uri=relay_uri
        )
    )
    assert tokenctl("definitions", "add", "--file", str(source), home=home, env=env).exit_code == 0
    added, _driver, log = with_browser(
        "add", "acme", "--definition", "acme-relay", home=home, env=env, out=tmp_path / "browser"
    )
    assert added.exit_code == 0, f"{added.stderr}\n{log}"
    assert f"The provider returns to {relay_uri}" in added.stderr
    html = (tmp_path / "browser" / "page.html").read_text()
    assert "token retrieved" in html and "alice@example.test" in html
    token = tokenctl("show", "acme", "--json", home=home, env=env).json()["token"]
    assert token["account"] == "alice@example.test" and token["has_refresh_token"]


def test_tenant_listing_selection_and_attributes(ocli, oidc, tmp_path, static_site):
    site_url, site_root = static_site
    (site_root / "connections").write_text(
        json.dumps(
            [
                {"tenantId": "t-1", "tenantName": "Acme BV"},
                {"tenantId": "t-2", "tenantName": "Acme Holding"},
            ]
        )
    )
    name = configure(
        ocli,
        tmp_path,
        oidc,
        tenants_url=f"{site_url}/connections",
        tenant_id_field="tenantId",
        tenant_name_field="tenantName",
        probe_url=f"{oidc.issuer}/me",
        probe_attributes={"login_email": "email"},
        callback_attributes={"iss": "callback_issuer"},
    )
    ocli.browser = ScriptedBrowser(oidc)
    chosen = ocli("add", "acme", "--definition", name, "--yes", "--tenant", "Acme Holding")
    assert chosen.exit_code == 0, chosen.stderr
    attributes = ocli("show", "acme", "--json").json()["token"]["attributes"]
    assert attributes["tenant"] == "Acme Holding" and attributes["tenant_id"] == "t-2"
    assert attributes["login_email"] == "alice@example.test"
    assert attributes["callback_issuer"] == oidc.issuer
    listed = ocli("list", tty=True)
    assert "Acme Holding" in listed.stdout
    # A tenant the login cannot use: nothing stored, and no live grant left behind.
    ocli.browser = ScriptedBrowser(oidc, user="frank", password="frank-password")
    wrong = ocli("add", "acme-x", "--definition", name, "--yes", "--tenant", "Nope")
    assert wrong.exit_code == 2 and "is not among those" in wrong.stderr
    assert ocli("show", "acme-x").exit_code == 3
    assert [g for g in oidc.grants("frank") if g.get("tokens")] == []
    # Several tenants and no terminal to ask on: all are recorded, with a hint.
    ocli.browser = ScriptedBrowser(oidc)
    both = ocli("add", "acme2", "--definition", name, "--yes")
    assert both.exit_code == 0
    assert "Pass --tenant ID to record one" in both.stderr
    assert ocli("show", "acme2", "--json").json()["token"]["attributes"]["tenants"] == (
        "Acme BV, Acme Holding"
    )
    # On a terminal the user picks one.
    ocli.browser = ScriptedBrowser(oidc)
    picked = ocli("add", "acme3", "--definition", name, "--yes", tty=True, input="1\n")
    assert picked.exit_code == 0, picked.stderr
    assert "  2. Acme Holding\nRecord the token for which tenant? [1]: " in picked.stderr
    assert ocli("show", "acme3", "--json").json()["token"]["attributes"]["tenant"] == "Acme BV"
    # An answer that is no listed number: nothing stored, and the flag that answers it named.
    ocli.browser = ScriptedBrowser(oidc)
    bad = ocli("add", "acme4", "--definition", name, "--yes", tty=True, input="3\n")
    assert bad.exit_code == 2 and "no tenant number '3'" in bad.stderr
    assert "pass --tenant ID" in bad.stderr
    assert ocli("show", "acme4").exit_code == 3


def add_templated(ocli, oidc, tmp_path, **oauth):  # type: ignore[no-untyped-def]
    """Add a definition `templated` with an {environment} placeholder in its URLs."""
    import tomli_w

    settings = {
        "issuer": oidc.issuer,
        "client_id": "tokenctl-public",
        "authorization_endpoint": f"{oidc.issuer}/auth",
        "token_endpoint": f"{oidc.issuer}/token",
        "jwks_uri": f"{oidc.issuer}/jwks",
        "scopes": ["openid", "offline_access", "email"],
        **oauth,
    }
    table = {
        "title": "Templated",
        "kind": "oauth2",
        "placeholders": {"environment": "the environment number"},
        "oauth2": settings,
    }
    source = tmp_path / "templated.toml"
    source.write_text(tomli_w.dumps({"definitions": {"templated": table}}))
    assert ocli("definitions", "add", "--file", str(source)).exit_code == 0


def test_placeholders_fill_from_param(ocli, oidc, tmp_path):
    add_templated(ocli, oidc, tmp_path, probe_url=f"{oidc.issuer}/me?env={{environment}}")
    missing = ocli("add", "t", "--definition", "templated", "--yes")
    assert missing.exit_code == 2 and "--param environment=VALUE" in missing.stderr
    ocli.browser = ScriptedBrowser(oidc)
    added = ocli("add", "t", "--definition", "templated", "--yes", "--param", "environment=42")
    assert added.exit_code == 0, added.stderr
    token = ocli("show", "t", "--probe", "--json").json()["token"]
    assert token["attributes"]["environment"] == "42"
    assert token["probe"]["result"] == "valid"
    assert ocli("renew", "t").exit_code == 0  # the refresh uses the same values


def test_delete_prints_the_command_with_params_and_tenant(ocli, oidc, tmp_path):
    add_templated(ocli, oidc, tmp_path, token_endpoint=f"{oidc.issuer}/token?env={{environment}}")
    assert (
        ocli(
            "add",
            "t",
            "--definition",
            "templated",
            "--no-login",
            "--description",
            "Acme env 42",
            "--param",
            "environment=42",
        ).exit_code
        == 0
    )
    deleted = ocli("delete", "t", "--yes")
    assert deleted.stdout == (
        "tokenctl add t --definition templated --description 'Acme env 42' --param environment=42\n"
    )
