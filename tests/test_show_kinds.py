"""`show` lists the fields that apply to the token's kind: hand-entered or OAuth."""

from __future__ import annotations

import pytest

from tests.oauth_support import ScriptedBrowser, configure

OAUTH_ONLY = (
    "Account",
    "Access token expires",
    "Refresh token",
    "Last renewed",
    "Last probe",
    "Granted scopes",
    "Required scopes",
    "Missing scopes",
)


def _fields(stdout: str) -> dict[str, str]:
    """The `Field:<TAB>value` lines of a piped `show`, up to the history."""
    head = stdout.split("History:\n", 1)[0]
    return dict(line.split(":\t", 1) for line in head.splitlines())


def _add_static(cli, name="key"):  # type: ignore[no-untyped-def]
    result = cli(
        "add", name, "--definition", "api-key", "--expires-in", "5d", "--secret-stdin", input="s"
    )
    assert result.exit_code == 0, result.stderr


def test_a_hand_entered_token_shows_no_oauth_fields(cli):
    _add_static(cli)
    cli.clock.advance(seconds=1)
    fields = _fields(cli("show", "key").stdout)
    assert list(fields) == [
        "Number",
        "Name",
        "Authentication code",
        "Type",
        "Classification",
        "Description",
        "Identifier",
        "State",
        "Status",
        "Expires",
        "Secret",
        "Created",
        "Updated",
    ]
    assert fields["Expires"] == "2026-11-28 12:00 (in 5 days)"
    table = cli("show", "key", tty=True).stdout
    assert "Expires" in table
    for label in OAUTH_ONLY:
        assert label not in table, label


def test_show_json_is_the_same_document_for_both_kinds(cli):
    _add_static(cli)
    token = cli("show", "key", "--json").json()["token"]
    for key in ("expires_at", "has_refresh_token", "probed_at", "granted_scopes", "account"):
        assert key in token  # the documented document keeps every field
    assert token["granted_scopes"] is None and token["has_refresh_token"] is False


@pytest.mark.peers
def test_an_oauth_token_shows_its_oauth_fields(ocli, oidc, tmp_path):
    name = configure(ocli, tmp_path, oidc)
    ocli.browser = ScriptedBrowser(oidc)
    assert ocli("add", "acme", "--definition", name, "--yes").exit_code == 0
    fields = _fields(ocli("show", "acme").stdout)
    for label in OAUTH_ONLY:
        assert label in fields, label
    assert fields["Account"] == "alice@example.test"
    assert fields["Refresh token"].startswith("stored")
    assert fields["Missing scopes"] == "—"
    # Without its definition the record still shows it was an OAuth login.
    assert ocli("definitions", "remove", name, "--force").exit_code == 0
    orphan = _fields(ocli("show", "acme").stdout)
    assert "Refresh token" in orphan and orphan["Classification"] == "(definition missing)"
