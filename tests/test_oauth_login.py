"""The OAuth login against the real oidc-provider, with a scripted browser over HTTP."""

from __future__ import annotations

import json

import pytest

from tests.oauth_support import ScriptedBrowser, configure, query_of

pytestmark = pytest.mark.peers


@pytest.mark.parametrize("client_id", ["tokenctl-public", "tokenctl-basic", "tokenctl-post"])
def test_add_logs_in_through_the_loopback_callback(ocli, oidc, tmp_path, client_id):
    name = configure(ocli, tmp_path, oidc, client_id)
    browser = ScriptedBrowser(oidc)
    ocli.browser = browser
    result = ocli("add", "acme", "--definition", name, "--description", "Acme BV", "--yes")
    assert result.exit_code == 0, result.stderr + repr(browser.errors)
    assert not browser.errors
    # The warning comes before the browser opens, and the URL is printed as well.
    stderr = result.stderr
    assert stderr.index("Log out of Acme Books") < stderr.index("Opening the browser")
    assert "access to all administrations" in stderr
    [url] = browser.opened
    assert url in stderr
    params = query_of(url)
    assert params["code_challenge_method"] == "S256"
    assert len(params["state"]) >= 32 and params["nonce"]
    assert params["prompt"] == "login"
    assert params["redirect_uri"].startswith("http://127.0.0.1:")
    # The browser got the success page naming the account.
    status, page = browser.pages[-1]
    assert status == 200 and "data-result=ok" in page and "alice@example.test" in page
    assert "<script" not in page and "http" not in page.split("<body", 1)[1].replace(
        "http://", ""
    )  # self-contained: no external resources
    token = ocli("show", "acme", "--json").json()["token"]
    assert token["account"] == "alice@example.test"
    assert token["has_refresh_token"] is True
    assert set(token["granted_scopes"]) >= {"invoices:read", "invoices:write", "openid"}
    assert token["status"] == "valid"
    assert token["attributes"]["issuer"] == oidc.issuer
    assert [e["event"] for e in token["history"]][:2] == ["retrieved", "created"]
    sealed = ocli.stored("acme")
    assert sealed is not None
    stored = {
        name: getattr(sealed, name)
        for name in ("access_token", "refresh_token", "id_token", "token_type")
    }
    assert all(stored.values())
    assert list(ocli.keyring.entries) == [token["secret"]["key_entry"]]  # only the data key
    everything = result.stdout + result.stderr + json.dumps(token)
    for value in stored.values():
        if len(value) > 10:
            assert value not in everything


def test_access_denied_is_exit_5_with_a_failure_page(ocli, oidc, tmp_path):
    name = configure(ocli, tmp_path, oidc)
    browser = ScriptedBrowser(oidc, approve=False)
    ocli.browser = browser
    result = ocli("add", "acme", "--definition", name, "--yes")
    assert result.exit_code == 5
    assert "access_denied" in result.stderr
    _status, page = browser.pages[-1]
    assert "data-result=fail" in page
    assert ocli("list", "--json").json()["tokens"] == []


def test_wrong_state_iss_mismatch_and_other_paths_are_ignored(ocli, oidc, tmp_path):
    name = configure(ocli, tmp_path, oidc)
    browser = ScriptedBrowser(
        oidc,
        before_callback=[
            "/favicon.ico",
            "/callback?code=forged&state=wrong",
            "/callback?{query}&iss=https%3A%2F%2Fevil.example",  # the real one, iss twice
        ],
    )
    ocli.browser = browser
    result = ocli("add", "acme", "--definition", name, "--yes")
    assert result.exit_code == 0, result.stderr
    assert browser.errors == []
    favicon, wrong_state, twice, final = browser.pages
    assert favicon[0] == 404
    assert wrong_state[0] == 400 and "state" in wrong_state[1]
    assert twice[0] == 400 and "iss parameter appears more than once" in twice[1]
    assert final[0] == 200 and "data-result=ok" in final[1]


def test_iss_mismatch_is_rejected(ocli, oidc, tmp_path):
    name = configure(ocli, tmp_path, oidc)
    seen: list[tuple[int, str]] = []

    def browser(url: str) -> None:
        final = oidc.browser_login(url, "alice", "alice-password", follow_to_callback=False)
        query = {k: v for k, v in query_of(final).items() if k != "iss"}
        from urllib.parse import urlencode

        from tests.oauth_support import fetch

        base = final.split("?")[0]
        seen.append(fetch(base + "?" + urlencode({**query, "iss": "https://evil.example"})))
        seen.append(fetch(base + "?" + urlencode(query)))  # iss required: also rejected

    ocli.browser = browser
    result = ocli("add", "acme", "--definition", name, "--yes", "--timeout", "3")
    assert [status for status, _ in seen] == [400, 400]
    assert "RFC 9207" in seen[0][1]
    assert result.exit_code == 5 and "no login arrived within 3 s" in result.stderr


def test_timeout_is_exit_5(ocli, oidc, tmp_path):
    name = configure(ocli, tmp_path, oidc)
    result = ocli("add", "acme", "--definition", name, "--yes", "--timeout", "1", "--no-browser")
    assert result.exit_code == 5
    assert "no login arrived within 1 s" in result.stderr
    assert "ssh -L" in result.stderr and ":127.0.0.1:" in result.stderr


def test_no_tty_without_yes_names_the_flag(ocli, oidc, tmp_path):
    name = configure(ocli, tmp_path, oidc)
    result = ocli("add", "acme", "--definition", name)
    assert result.exit_code == 2 and "--yes" in result.stderr


def test_insufficient_scope_warns_and_sets_status(ocli, oidc, tmp_path):
    name = configure(ocli, tmp_path, oidc)
    ocli.browser = ScriptedBrowser(oidc, user="carol", password="carol-password")
    result = ocli("add", "acme", "--definition", name, "--yes")
    assert result.exit_code == 0, result.stderr
    assert "missing: invoices:write" in result.stderr
    token = ocli("show", "acme", "--json").json()["token"]
    assert token["status"] == "insufficient"
    assert "invoices:write" not in token["granted_scopes"]
    listed = ocli("list", "--status", "insufficient", "--json").json()["tokens"]
    assert [t["name"] for t in listed] == ["acme"]


def test_reuse_session_drops_the_fresh_login_parameter(ocli, oidc, tmp_path):
    name = configure(ocli, tmp_path, oidc, fresh_login_params={"force_login": "1"})
    browser = ScriptedBrowser(oidc)
    ocli.browser = browser
    assert ocli("add", "a", "--definition", name, "--yes").exit_code == 0
    assert query_of(browser.opened[0])["force_login"] == "1"
    browser2 = ScriptedBrowser(oidc)
    ocli.browser = browser2
    assert ocli("add", "b", "--definition", name, "--yes", "--reuse-session").exit_code == 0
    params = query_of(browser2.opened[0])
    assert "force_login" not in params and "prompt" not in params


def test_discovered_definition_still_requires_iss(ocli, oidc):
    from urllib.parse import urlencode

    from tests.oauth_support import fetch

    added = ocli(
        "definitions", "add", "disco", "--issuer", oidc.issuer, "--client-id", "tokenctl-public"
    )
    assert added.exit_code == 0, added.stderr
    shown = ocli("definitions", "show", "disco", "--json").json()["definition"]["oauth2"]
    assert shown["iss_parameter_supported"] is True
    pages: list[tuple[int, str]] = []

    def browser(url: str) -> None:
        final = oidc.browser_login(url, "alice", "alice-password", follow_to_callback=False)
        query = query_of(final)
        without_iss = {k: v for k, v in query.items() if k != "iss"}
        base = final.split("?")[0]
        pages.append(fetch(base + "?" + urlencode(without_iss)))
        pages.append(fetch(final))

    ocli.browser = browser
    result = ocli("add", "acme", "--definition", "disco", "--yes")
    assert result.exit_code == 0, result.stderr
    assert pages[0][0] == 400 and "RFC 9207" in pages[0][1]
    assert pages[1][0] == 200
