"""Scripting and CI: check, token, exec and renew --all."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime

import pytest

from tests.fakes import Cli, Clock
from tests.oauth_support import ScriptedBrowser, configure


def add_static(cli, name, *extra, secret="pc-secret"):  # type: ignore[no-untyped-def]
    result = cli("add", name, "--definition", "api-key", "--secret-stdin", *extra, input=secret)
    assert result.exit_code == 0, result.stderr
    return result


# -- check -----------------------------------------------------------------------------------


def test_check_exit_codes_follow_the_worst_token(cli):
    assert cli("check").exit_code == 0
    add_static(cli, "far", "--expires-in", "60d")
    ok = cli("check")
    assert ok.exit_code == 0 and ok.stdout == ""
    assert "Checked 1 effective token(s): 0 failing, 0 expiring within 1w" in ok.stderr
    add_static(cli, "soon", "--expires-in", "3d")
    expiring = cli("check")
    assert expiring.exit_code == 10
    assert expiring.stdout.split("\t")[:3] == ["2", "soon", "expiring"]
    assert "tokenctl renew soon --secret-stdin" in expiring.stdout
    assert cli("check", "--within", "1d").exit_code == 0
    assert cli("check", "far").exit_code == 0
    cli.clock.advance(days=4)
    failing = cli("check")
    assert failing.exit_code == 11
    assert "expired" in failing.stdout
    cli("disable", "soon")
    skipped = cli("check")
    assert skipped.exit_code == 0 and "1 not effective, skipped" in skipped.stderr


def test_check_json_and_quiet(cli):
    add_static(cli, "soon", "--expires-in", "2d")
    quiet = cli("check", "--quiet")
    assert quiet.exit_code == 10 and quiet.stdout == "" and quiet.stderr == ""
    document = cli("check", "--json")
    assert document.exit_code == 10
    report = document.json()["check"]
    assert document.json()["schema_version"] == 1
    assert report["exit_code"] == 10 and report["checked"] == 1 and report["within"] == "1w"
    [finding] = report["tokens"]
    assert finding["name"] == "soon" and finding["severity"] == "expiring"
    assert finding["fix"] == "tokenctl renew soon --secret-stdin"
    assert finding["connection_expires_at"] == "2026-11-25T12:00:00Z"


def test_check_unknown_ref_is_exit_3(cli):
    assert cli("check", "nope").exit_code == 3


def test_check_flags_a_token_without_secret(cli, oidc, tmp_path):
    configure(cli, tmp_path, oidc)
    assert cli("add", "later", "--definition", "acme-books", "--no-login").exit_code == 0
    result = cli("check")
    assert result.exit_code == 11
    assert "no secret is stored" in result.stdout
    assert "tokenctl renew later --login" in result.stdout


@pytest.fixture
def oclock_cli(tmp_path):  # type: ignore[no-untyped-def]
    """A CLI whose clock starts at the wall clock and can be moved forward."""
    return Cli(home=tmp_path / "home", clock=Clock(now=datetime.now(UTC)))


def test_check_counts_the_refresh_tokens_inactivity_window(oclock_cli, oidc, tmp_path):
    cli = oclock_cli
    configure(cli, tmp_path, oidc)
    source = tmp_path / "idle.toml"
    shown = cli("definitions", "show", "acme-books", "--json").json()["definition"]
    assert shown["lifetimes"]["refresh_token_idle"] is None
    text = (cli.home / "definitions.toml").read_text()
    source.write_text(text + '\n[definitions.acme-books.lifetimes]\nrefresh_token_idle = "30d"\n')
    assert cli("definitions", "add", "--file", str(source), "--replace").exit_code == 0
    cli.browser = ScriptedBrowser(oidc)
    assert cli("add", "acme", "--definition", "acme-books", "--yes").exit_code == 0
    # The access token lives an hour, but the connection lives as long as it is used.
    cli.clock.advance(days=2)
    assert cli("check").exit_code == 0
    cli.clock.advance(days=25)
    result = cli("check")
    assert result.exit_code == 10
    assert "the refresh token dies unused at" in result.stdout
    assert "tokenctl renew acme\n" in result.stdout  # a refresh resets the window
    cli.clock.advance(days=4)
    assert cli("check").exit_code == 11


def test_check_probe_catches_a_token_revoked_before_its_expiry(ocli, oidc, tmp_path):
    configure(ocli, tmp_path, oidc)
    ocli.browser = ScriptedBrowser(oidc, user="dave", password="dave-password")
    assert ocli("add", "acme", "--definition", "acme-books", "--yes").exit_code == 0
    assert ocli("check", "--probe").exit_code == 0
    oidc.revoke_user_grants("dave")
    assert ocli("check").exit_code == 0  # the date alone cannot tell
    probed = ocli("check", "--probe", "--json")
    assert probed.exit_code == 11
    [finding] = probed.json()["check"]["tokens"]
    assert finding["status"] == "invalid"
    assert finding["fix"] == "tokenctl renew acme --login"


# -- token and exec --------------------------------------------------------------------------


def test_token_prints_only_the_secret(cli):
    add_static(cli, "key", secret="static-value")
    result = cli("token", "key")
    assert result.exit_code == 0 and result.stdout == "static-value\n"
    assert result.stderr == ""
    cli("disable", "key")
    disabled = cli("token", "key")
    assert (
        disabled.exit_code == 1
        and disabled.stdout == ""
        and "tokenctl enable key" in disabled.stderr
    )


def test_token_refreshes_when_due_and_never_prompts(oclock_cli, oidc, tmp_path):
    cli = oclock_cli
    configure(cli, tmp_path, oidc)
    cli.browser = ScriptedBrowser(oidc)
    assert cli("add", "acme", "--definition", "acme-books", "--yes").exit_code == 0
    first = cli("token", "acme")
    assert first.exit_code == 0
    assert first.stdout == cli.stored("acme").access_token + "\n"
    cli.clock.advance(minutes=59, seconds=30)  # within the refresh margin of the 1 h token
    second = cli("token", "acme")
    assert second.exit_code == 0
    assert second.stdout != first.stdout
    assert second.stdout == cli.stored("acme").access_token + "\n"
    history = cli("show", "acme", "--json").json()["token"]["history"]
    assert history[0]["event"] == "renewed"
    # A login would be needed: exit 5, the command on stderr, nothing on stdout.
    oidc.revoke_user_grants("alice")
    cli.clock.advance(hours=2)
    third = cli("token", "acme", tty=True)
    assert third.exit_code == 5 and third.stdout == ""
    assert "tokenctl renew acme --login" in third.stderr


def test_exec_passes_the_token_in_the_environment(cli, tmp_path):
    add_static(cli, "key", secret="env-secret")
    out = tmp_path / "seen.json"
    script = (
        "import json, os, sys; "
        "seen = {'env': os.environ.get('API_TOKEN'), 'argv': sys.argv}; "
        f"json.dump(seen, open({str(out)!r}, 'w')); "
        "sys.exit(7)"
    )
    result = cli("exec", "key", "--env", "API_TOKEN", "--", sys.executable, "-c", script, "--flag")
    assert result.exit_code == 7
    seen = json.loads(out.read_text())
    assert seen["env"] == "env-secret"
    assert "env-secret" not in json.dumps(seen["argv"]) and seen["argv"][-1] == "--flag"
    assert cli("exec", "key", "--env", "1BAD", "--", "true").exit_code == 2
    assert cli("exec", "key").exit_code == 2
    assert cli("exec", "key", "--", "/nonexistent/cmd").exit_code == 2


# -- renew --all -----------------------------------------------------------------------------


def test_renew_all_refreshes_concurrently_and_lists_what_needs_a_login(ocli, oidc, tmp_path):
    configure(ocli, tmp_path, oidc)
    configure(ocli, tmp_path, oidc, "tokenctl-post", name="post-books")
    for name, definition, user in (
        ("a1", "acme-books", "alice"),
        ("a2", "acme-books", "alice"),
        ("p1", "post-books", "alice"),
        ("d1", "acme-books", "dave"),
    ):
        ocli.browser = ScriptedBrowser(oidc, user=user, password=f"{user}-password")
        assert ocli("add", name, "--definition", definition, "--yes").exit_code == 0
    add_static(ocli, "static")
    ocli.browser = ScriptedBrowser(oidc)
    assert ocli("add", "off", "--definition", "acme-books", "--yes").exit_code == 0
    ocli("disable", "off")
    before = {name: ocli("token", name).stdout for name in ("a1", "a2", "p1")}
    oidc.revoke_user_grants("dave")
    ocli.browser = None
    result = ocli("renew", "--all", "--json", "--concurrency", "3")
    assert result.exit_code == 1
    outcomes = {item["name"]: item for item in result.json()["renewals"]}
    assert set(outcomes) == {"a1", "a2", "p1", "d1"}  # no static, no not-effective
    assert {n: outcomes[n]["outcome"] for n in ("a1", "a2", "p1")} == dict.fromkeys(
        ("a1", "a2", "p1"), "refreshed"
    )
    assert outcomes["d1"]["outcome"] == "needs-login"
    assert outcomes["d1"]["fix"] == "tokenctl renew d1 --login"
    for name, old in before.items():
        assert ocli("token", name).stdout != old
    assert "renew --all: 4 token(s): 1 needs-login, 3 refreshed." in result.stderr
    ocli("delete", "d1", "--yes", "--no-revoke")
    again = ocli("renew", "--all", "--definition", "post-books")
    assert again.exit_code == 0
    assert "refreshed\tp1" in again.stderr
    assert ocli("renew", "--all", "--within", "1m").stderr.endswith("0 token(s): nothing.\n")


def test_renew_all_refuses_a_ref_or_login_flags(cli):
    assert cli("renew", "x", "--all").exit_code == 2
    assert cli("renew", "--all", "--login").exit_code == 2
    assert cli("renew").exit_code == 2


def test_unknown_definition_filter_is_an_error(cli):
    assert cli("check", "--definition", "nosuch").exit_code == 3
    assert cli("renew", "--all", "--definition", "nosuch").exit_code == 3
    assert cli("renew", "--all", "--secret-stdin").exit_code == 2
    assert cli("renew", "--all", "--tenant", "x").exit_code == 2


def test_undeclared_param_is_refused(cli):
    result = cli(
        "add", "k", "--definition", "api-key", "--secret-stdin", "--param", "x=1", input="s"
    )
    assert result.exit_code == 2 and "has no placeholder 'x'" in result.stderr


def test_check_probe_skips_a_definition_it_cannot_probe(ocli, oidc, tmp_path):
    configure(
        ocli,
        tmp_path,
        oidc,
        authorization_endpoint=f"{oidc.issuer}/auth",
        token_endpoint=f"{oidc.issuer}/token",
        jwks_uri=f"{oidc.issuer}/jwks",
        iss_parameter_supported=True,
    )
    ocli.browser = ScriptedBrowser(oidc)
    assert ocli("add", "acme", "--definition", "acme-books", "--yes").exit_code == 0
    result = ocli("check", "--probe")
    assert result.exit_code == 0, result.stderr
    assert "acme: not probed" in result.stderr


def test_renew_all_honours_the_refresh_margin(ocli, oidc, tmp_path):
    configure(ocli, tmp_path, oidc)
    text = (ocli.home / "definitions.toml").read_text()
    source = tmp_path / "margin.toml"
    source.write_text(text + '\n[definitions.acme-books.lifetimes]\nrefresh_margin = "30s"\n')
    assert ocli("definitions", "add", "--file", str(source), "--replace").exit_code == 0
    ocli.browser = ScriptedBrowser(oidc)
    assert ocli("add", "acme", "--definition", "acme-books", "--yes").exit_code == 0
    result = ocli("renew", "--all")
    assert result.exit_code == 0
    assert "0 token(s): nothing" in result.stderr  # an hour left: not due yet
