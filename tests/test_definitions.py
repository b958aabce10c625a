"""Definitions: built-ins, the user's file, validation errors, add and remove."""

from __future__ import annotations

import textwrap

import pytest

from tokenctl.definitions.registry import load_builtin_definitions, load_definitions
from tokenctl.errors import ConfigError

ACME = textwrap.dedent(
    """
    [definitions.acme-books]
    title = "Acme Books"
    classification = "Accounting"
    kind = "oauth2"
    identifier_mandatory = true

    [definitions.acme-books.oauth2]
    issuer = "https://login.acme.example"
    token_endpoint = "https://login.acme.example/token"
    authorization_endpoint = "https://login.acme.example/authorize"
    scopes = ["openid", "offline_access", "invoices"]
    required_scopes = ["invoices"]
    authorize_params = { force_login = "1" }
    client_id = "public-client"

    [definitions.acme-books.lifetimes]
    access_token = "10m"
    refresh_token_idle = "30d"
    rotates_refresh_token = true
    """
)


def write(path, text):  # type: ignore[no-untyped-def]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_builtins_load_and_include_a_static_definition():
    builtins = load_builtin_definitions()
    assert builtins["api-key"].kind.value == "static"
    assert builtins["api-key"].pass_code_mandatory is True
    assert builtins["api-key"].identifier_mandatory is False


def test_definitions_list_groups_and_json(cli):
    result = cli("definitions", "--json")
    assert result.exit_code == 0
    names = [d["name"] for d in result.json()["definitions"]]
    assert {"api-key", "basic-credentials"} <= set(names)
    table = cli("definitions", tty=True)
    assert "Generic" in table.stdout and "api-key" in table.stdout


def test_add_from_file_then_show(cli, tmp_path):
    source = write(tmp_path / "acme.toml", ACME)
    added = cli("definitions", "add", "--file", str(source))
    assert added.exit_code == 0, added.stderr
    assert "Added definition 'acme-books'" in added.stderr
    shown = cli("definitions", "show", "acme-books", "--json").json()["definition"]
    assert shown["oauth2"]["required_scopes"] == ["invoices"]
    assert shown["oauth2"]["authorize_params"] == {"force_login": "1"}
    assert shown["lifetimes"]["refresh_token_idle"] == "4w2d"
    assert shown["source"].endswith("definitions.toml")
    again = cli("definitions", "add", "--file", str(source))
    assert again.exit_code == 1 and "--replace" in again.stderr
    assert cli("definitions", "add", "--file", str(source), "--replace").exit_code == 0
    text = cli("definitions", "show", "acme-books")
    assert "oauth2.token_endpoint:\thttps://login.acme.example/token" in text.stdout


def test_user_definition_overrides_builtin_and_removal_reverts(cli, tmp_path):
    source = write(
        tmp_path / "o.toml", '[definitions.api-key]\ntitle = "Our key"\nkind = "static"\n'
    )
    assert "overrides the built-in" in cli("definitions", "add", "-f", str(source)).stderr
    cli("add", "k", "--definition", "api-key", "--secret-stdin", input="x")
    assert cli("list", "--json").json()["tokens"][0]["type"] == "Our key"
    removed = cli("definitions", "remove", "api-key")
    assert (
        removed.exit_code == 0
        and "built-in definition 'api-key' is in effect again" in removed.stderr
    )
    assert cli("list", "--json").json()["tokens"][0]["type"] == "API key"


def test_builtin_cannot_be_removed(cli):
    result = cli("definitions", "remove", "api-key")
    assert result.exit_code == 2 and "built-in" in result.stderr


def test_remove_refused_while_used_unless_forced(cli, tmp_path):
    source = write(tmp_path / "s.toml", '[definitions.shop]\ntitle = "Shop key"\nkind = "static"\n')
    cli("definitions", "add", "--file", str(source))
    cli("add", "k", "--definition", "shop", "--secret-stdin", input="x")
    refused = cli("definitions", "remove", "shop")
    assert refused.exit_code == 1 and "used by 1 token(s): k" in refused.stderr
    forced = cli("definitions", "remove", "shop", "--force")
    assert forced.exit_code == 0 and "missing definition: k" in forced.stderr
    listed = cli("list", "--json").json()["tokens"][0]
    assert listed["type"] == "shop"  # still listed, by its definition's name
    assert cli("definitions", "remove", "nope").exit_code == 3


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[definitions.x\n", "invalid TOML"),
        ('[definitions.x]\nkind = "static"\n', "definition 'x', field 'title': is required"),
        (
            '[definitions.x]\ntitle = "X"\nkind = "oath2"\n',
            "field 'kind': must be 'static' or 'oauth2'",
        ),
        (
            '[definitions.x]\ntitle = "X"\nkind = "static"\ncolour = "red"\n',
            "field 'colour': unknown field",
        ),
        ('[definitions.x]\ntitle = "X"\nkind = "oauth2"\n', "field 'oauth2': is required"),
        (
            '[definitions.x]\ntitle = "X"\nkind = "oauth2"\n[definitions.x.oauth2]\n'
            'token_endpoint = "ftp://a"\n',
            "field 'oauth2.token_endpoint': must be an http(s) URL",
        ),
        (
            '[definitions.x]\ntitle = "X"\nkind = "static"\n[definitions.x.lifetimes]\n'
            'access_token = "ten minutes"\n',
            "field 'lifetimes.access_token': invalid duration",
        ),
        (
            '[definitions.x]\ntitle = "X"\nkind = "static"\nidentifier_mandatory = "yes"\n',
            "field 'identifier_mandatory': must be true or false",
        ),
        (
            '[definitions.x]\ntitle = "X"\nkind = "oauth2"\n[definitions.x.oauth2]\n'
            'token_endpoint = "https://a.example/token"\n'
            'callback_attributes = { code = "grant" }\n',
            "field 'oauth2.callback_attributes': 'code' is the login's own callback parameter",
        ),
        ('[definitions."Bad Name"]\ntitle = "X"\nkind = "static"\n', "invalid name"),
        ("[other]\n", "unknown top-level key 'other'"),
    ],
)
def test_malformed_user_file_names_file_definition_and_field(cli, text, expected):
    write(cli.home / "definitions.toml", text)
    for command in (["definitions"], ["list"], ["add", "k", "--definition", "api-key"]):
        result = cli(*command)
        assert result.exit_code == 1, (command, result.stderr)
        assert "definitions.toml" in result.stderr
        assert expected in result.stderr
        assert "Traceback" not in result.stderr


def test_malformed_file_for_add_is_refused_without_writing(cli, tmp_path):
    source = write(
        tmp_path / "bad.toml", '[definitions.y]\ntitle = "Y"\nkind = "static"\nport = 1\n'
    )
    result = cli("definitions", "add", "--file", str(source))
    assert result.exit_code == 1
    assert f"{source}: definition 'y', field 'port': unknown field" in result.stderr
    assert not (cli.home / "definitions.toml").exists()
    missing = cli("definitions", "add", "--file", str(tmp_path / "none.toml"))
    assert missing.exit_code == 3


def test_loader_reports_file_path(tmp_path):
    path = write(tmp_path / "definitions.toml", '[definitions.x]\ntitle = 3\nkind = "static"\n')
    with pytest.raises(ConfigError) as caught:
        load_definitions(path)
    assert str(path) in caught.value.message
    assert "field 'title'" in caught.value.message


def test_oauth_definition_without_client_id_names_the_fix(cli, tmp_path):
    text = ACME.replace('client_id = "public-client"\n', "")
    cli("definitions", "add", "--file", str(write(tmp_path / "a.toml", text)))
    result = cli("add", "k", "--definition", "acme-books", "--identifier", "u", "--yes")
    assert result.exit_code == 1
    assert "has no client id" in result.stderr
    assert "tokenctl definitions configure acme-books --client-id ID" in result.stderr
    assert cli("list", "--json").json()["tokens"] == []


def test_login_scopes_are_asked_for_but_not_required_unless_listed():
    """One rule for TOML, built-in and discovered definitions without required_scopes."""
    from tokenctl.definitions.model import parse_definition

    def oauth(**fields):  # type: ignore[no-untyped-def]
        table = {"title": "T", "kind": "oauth2", "oauth2": {"token_endpoint": "https://t/x"}}
        table["oauth2"].update(fields)
        return parse_definition("t", table, "test")

    asked = ["openid", "profile", "email", "offline_access", "invoices", "ledger"]
    assert oauth(scopes=asked).required_scopes == ("invoices", "ledger")
    assert oauth(scopes=["openid", "offline_access"]).required_scopes == ()
    # Listed explicitly, a login scope is required (and proved by the tokens, see models).
    explicit = oauth(scopes=asked, required_scopes=["offline_access", "invoices"])
    assert explicit.required_scopes == ("offline_access", "invoices")
    for definition in load_builtin_definitions().values():
        if definition.oauth2 is not None and definition.oauth2.required_scopes is None:
            assert not {"openid", "profile", "email", "offline_access"} & set(
                definition.required_scopes
            ), definition.name
