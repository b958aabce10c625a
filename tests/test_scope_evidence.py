"""A refresh token proves offline_access and an id token openid, listed or not."""

from __future__ import annotations

import json
import sqlite3

import pytest

from tests.oauth_support import PROVIDER_CONFIG, SCOPES, ScriptedBrowser, configure
from tests.peers.fixtures import start_oidc_peer


@pytest.fixture(scope="module")
def terse_oidc(tmp_path_factory):  # type: ignore[no-untyped-def]
    """oidc-provider that, like the Microsoft identity platform, leaves offline_access and
    openid out of the granted ``scope`` of its token responses (the tokens still come)."""
    config = {**PROVIDER_CONFIG, "omit_granted_scopes": ["offline_access", "openid"]}
    server = start_oidc_peer(config, tmp_path_factory.mktemp("terse-oidc"))
    yield server
    server.stop()


def _assert_sufficient(ocli) -> dict:  # type: ignore[no-untyped-def, type-arg]
    token = ocli("show", "acme", "--json").json()["token"]
    # The provider really left them out, and tokenctl still counts them as granted.
    assert "offline_access" not in token["granted_scopes"]
    assert "openid" not in token["granted_scopes"]
    assert token["has_refresh_token"] is True
    assert token["status"] == "valid", token
    assert token["missing_scopes"] == []
    assert ocli("list", "--json").json()["tokens"][0]["status"] == "valid"
    check = ocli("check")
    assert check.exit_code == 0, check.stdout + check.stderr
    shown = ocli("show", "acme").stdout
    missing = [line for line in shown.splitlines() if line.startswith("Missing scopes")]
    assert missing and "offline_access" not in missing[0] and "openid" not in missing[0]
    return token  # type: ignore[no-any-return]


@pytest.mark.peers
def test_refresh_and_id_token_prove_offline_access_and_openid(ocli, terse_oidc, tmp_path):
    # Every requested scope is required, offline_access and openid included.
    name = configure(ocli, tmp_path, terse_oidc, required_scopes=SCOPES)
    ocli.browser = ScriptedBrowser(terse_oidc)
    added = ocli("add", "acme", "--definition", name, "--yes")
    assert added.exit_code == 0, added.stderr
    assert "did not grant every required scope" not in added.stderr
    _assert_sufficient(ocli)
    ocli.browser = None
    renewed = ocli("renew", "acme")
    assert renewed.exit_code == 0, renewed.stderr
    token = _assert_sufficient(ocli)
    assert token["history"][0]["event"] == "renewed"


@pytest.mark.peers
def test_a_scope_really_missing_is_still_insufficient(ocli, terse_oidc, tmp_path):
    # carol never grants invoices:write: that stays missing; the two proven ones do not.
    name = configure(ocli, tmp_path, terse_oidc, required_scopes=SCOPES)
    ocli.browser = ScriptedBrowser(terse_oidc, user="carol", password="carol-password")
    added = ocli("add", "acme", "--definition", name, "--yes")
    assert added.exit_code == 0, added.stderr
    assert "missing: invoices:write." in added.stderr
    token = ocli("show", "acme", "--json").json()["token"]
    assert token["status"] == "insufficient" and token["missing_scopes"] == ["invoices:write"]
    check = ocli("check")
    assert check.exit_code == 11
    assert "the grant lacks required scopes: invoices:write" in check.stdout + check.stderr


def test_evidenced_scopes():
    from tokenctl.models import evidenced_scopes, missing_scopes

    assert evidenced_scopes(None, has_refresh_token=True, has_id_token=True) is None
    assert evidenced_scopes(["a"], has_refresh_token=True, has_id_token=False) == {
        "a",
        "offline_access",
    }
    required = ["openid", "offline_access", "a"]
    assert missing_scopes(required, ["a"], has_refresh_token=True, has_id_token=True) == []
    assert missing_scopes(required, ["a"], has_refresh_token=False, has_id_token=False) == [
        "offline_access",
        "openid",
    ]
    assert missing_scopes(required, None, has_refresh_token=False, has_id_token=False) == []


def test_upgraded_inventory_counts_the_id_token_of_an_openid_login(tmp_path):
    from tokenctl.inventory.sqlite import MIGRATIONS, SqliteInventory

    path = tmp_path / "inventory.sqlite3"
    connection = sqlite3.connect(path, isolation_level=None)
    for migration in MIGRATIONS[:2]:
        migration(connection)
    connection.execute("PRAGMA user_version = 2")
    row = (
        "INSERT INTO tokens (name, authentication_code, definition, secret_ref, state, "
        "granted_scopes, attributes, created_at, created_by, created_unit, updated_at, "
        "updated_by, updated_unit, has_refresh_token) VALUES (?, ?, 'd', ?, 'effective', "
        "?, ?, 't', 'u', 'h', 't', 'u', 'h', 1)"
    )
    now = "2026-11-23T12:00:00Z"
    for name, attributes in (
        ("oidc", {"issuer": "https://id.example", "subject": "alice"}),
        ("plain", {"tenant": "subject: x"}),
    ):
        connection.execute(
            row.replace("'t'", f"'{now}'"),
            (name, f"code-{name}", f"ref-{name}", json.dumps(["a"]), json.dumps(attributes)),
        )
    connection.close()
    inventory = SqliteInventory(path)
    tokens = {token.name: token for token in inventory.tokens()}
    inventory.close()
    assert tokens["oidc"].has_id_token is True
    assert tokens["plain"].has_id_token is False
    assert tokens["oidc"].missing_scopes(["a", "openid", "offline_access"]) == []
    assert tokens["plain"].missing_scopes(["a", "openid", "offline_access"]) == ["openid"]
