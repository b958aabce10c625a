"""The built-in definitions of the financial packages, and their documentation pages."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from tokenctl.definitions import DefinitionKind
from tokenctl.definitions.model import (
    NAME_PATTERN,
    PLACEHOLDER,
    TEMPLATED_FIELDS,
    fill_placeholders,
)
from tokenctl.definitions.registry import _parse_document, load_builtin_definitions
from tokenctl.errors import UsageError

BUILTINS = load_builtin_definitions()
NAMES = sorted(BUILTINS)
OAUTH = sorted(n for n, d in BUILTINS.items() if d.kind is DefinitionKind.OAUTH2)
STATIC = sorted(n for n, d in BUILTINS.items() if d.kind is DefinitionKind.STATIC)
GENERIC = ("api-key", "basic-credentials")
PROVIDER_DOCS = Path(__file__).resolve().parent.parent / "docs" / "providers"

EXPECTED_OAUTH = {
    *(f"exact-online-{site}" for site in ("nl", "be", "de", "uk", "com", "fr", "es")),
    "twinfield",
    "xero",
    "quickbooks-online",
    "quickbooks-online-sandbox",
    "business-central",
    "visma-eaccounting",
    "moneybird",
    "sage-accounting",
    "afas-profit",
    "netsuite",
    "freeagent",
    *(f"zoho-books-{site}" for site in ("com", "eu", "in", "au", "cn", "jp")),
    "fortnox",
}
EXPECTED_STATIC = {"afas-profit-token", "snelstart", "yuki", "e-boekhouden", *GENERIC}

#: Sample values for every placeholder a built-in declares.
SAMPLES = {
    "tenant": "11111111-2222-3333-4444-555555555555",
    "environment": "Production",
    "account": "1234567",
}


def templated_values(definition) -> dict[str, str]:
    """Every OAuth field that may hold a {placeholder}, with its value."""
    assert definition.oauth2 is not None
    values = {
        name: getattr(definition.oauth2, name)
        for name in TEMPLATED_FIELDS
        if getattr(definition.oauth2, name) is not None
    }
    values.update(
        {f"authorize_params.{k}": v for k, v in definition.oauth2.authorize_params.items()}
    )
    return values


# -- loading and validation -------------------------------------------------------------------


def test_the_expected_definitions_are_built_in_with_their_kinds():
    assert set(OAUTH) == EXPECTED_OAUTH
    assert set(STATIC) == EXPECTED_STATIC
    assert all(re.match(NAME_PATTERN, name) for name in NAMES)
    assert all(d.source == "built-in" for d in BUILTINS.values())


def test_the_generic_definitions_are_unchanged():
    api_key, basic = BUILTINS["api-key"], BUILTINS["basic-credentials"]
    assert dict(api_key.raw) == {
        "title": "API key",
        "classification": "Generic",
        "kind": "static",
        "description": "A static API key, pass code or personal access token entered by hand.",
        "identifier_mandatory": False,
        "pass_code_mandatory": True,
        "pass_code_label": "API key",
    }
    assert dict(basic.raw) == {
        "title": "Identifier and pass code",
        "classification": "Generic",
        "kind": "static",
        "description": (
            "A web-service user: an identifier (user name, client id) with its pass code."
        ),
        "identifier_mandatory": True,
        "pass_code_mandatory": True,
    }


def test_classifications_are_package_categories():
    by_class: dict[str, set[str]] = {}
    for definition in BUILTINS.values():
        by_class.setdefault(definition.classification, set()).add(definition.name)
    assert set(by_class) == {"Accounting", "ERP", "Generic"}
    assert by_class["Generic"] == set(GENERIC)
    assert by_class["ERP"] == {"afas-profit", "afas-profit-token", "business-central", "netsuite"}


@pytest.mark.parametrize("name", OAUTH)
def test_oauth_builtin_has_token_endpoint_and_a_way_to_authorize(name):
    settings = BUILTINS[name].oauth2
    assert settings is not None
    assert settings.token_endpoint and settings.token_endpoint.startswith("https://")
    assert settings.authorization_endpoint or settings.issuer
    # The organisation's own values are never built in.
    assert settings.client_id is None
    assert settings.redirect_uri is None
    assert settings.login_mode == "loopback"
    for field_name, value in templated_values(BUILTINS[name]).items():
        if field_name.startswith("authorize_params."):
            continue
        assert value.startswith("https://"), (field_name, value)


@pytest.mark.parametrize("name", OAUTH)
def test_oauth_builtin_requires_only_scopes_it_asks_for(name):
    definition = BUILTINS[name]
    assert definition.oauth2 is not None
    assert set(definition.required_scopes) <= set(definition.oauth2.scopes)


@pytest.mark.parametrize("name", STATIC)
def test_static_builtin_asks_for_a_pass_code_and_has_no_oauth(name):
    definition = BUILTINS[name]
    assert definition.oauth2 is None
    assert definition.pass_code_mandatory is True
    assert definition.pass_code_label


def test_static_mandatory_fields_and_labels():
    afas = BUILTINS["afas-profit-token"]
    assert (afas.identifier_mandatory, afas.identifier_label) == (True, "environment number")
    assert afas.pass_code_label == "AFAS token"
    assert BUILTINS["snelstart"].pass_code_label == "client key"
    assert BUILTINS["yuki"].pass_code_label == "web-service access key"
    assert BUILTINS["e-boekhouden"].pass_code_label == "API token"
    for name in ("snelstart", "yuki", "e-boekhouden"):
        assert BUILTINS[name].identifier_mandatory is False


def test_fresh_login_parameters_are_sent_only_where_documented():
    sends_prompt_login = {
        name for name in OAUTH if BUILTINS[name].oauth2.fresh_login_params.get("prompt") == "login"
    }
    assert sends_prompt_login == {"business-central", "visma-eaccounting"}
    for site in ("nl", "be", "de", "uk", "com", "fr", "es"):
        exact = BUILTINS[f"exact-online-{site}"].oauth2
        assert exact is not None and dict(exact.fresh_login_params) == {"force_login": "1"}
    undocumented = set(OAUTH) - sends_prompt_login - {n for n in OAUTH if n.startswith("exact-")}
    for name in undocumented:
        assert dict(BUILTINS[name].oauth2.fresh_login_params) == {}, name


def test_provider_specific_parameters():
    xero = BUILTINS["xero"].oauth2
    assert xero is not None
    assert (xero.tenants_url, xero.tenant_id_field, xero.tenant_name_field) == (
        "https://api.xero.com/connections",
        "tenantId",
        "tenantName",
    )
    for name in ("quickbooks-online", "quickbooks-online-sandbox"):
        assert dict(BUILTINS[name].oauth2.callback_attributes) == {"realmId": "tenant"}
    visma = BUILTINS["visma-eaccounting"].oauth2
    assert visma is not None
    assert dict(visma.authorize_params) == {"acr_values": "forceselectcompany:true"}
    for site in ("com", "eu", "in", "au", "cn", "jp"):
        zoho = BUILTINS[f"zoho-books-{site}"].oauth2
        assert zoho is not None
        assert dict(zoho.authorize_params) == {"access_type": "offline", "prompt": "consent"}
        assert zoho.token_endpoint.startswith("https://accounts.zoho.")
    exact = BUILTINS["exact-online-nl"].oauth2
    assert exact is not None
    assert dict(exact.probe_attributes) == {
        "tenant": "d.results.0.CurrentDivision",
        "account": "d.results.0.UserName",
    }


def test_lifetimes_follow_the_facts():
    def lifetimes(name):
        return BUILTINS[name].to_dict()["lifetimes"]

    exact = lifetimes("exact-online-de")
    assert (exact["access_token"], exact["refresh_token_idle"], exact["refresh_margin"]) == (
        "10m",
        "4w2d",
        "30s",
    )
    assert exact["rotates_refresh_token"] is True
    assert lifetimes("afas-profit")["refresh_token"] == "4w2d"
    assert lifetimes("netsuite")["refresh_token"] == "1w"
    assert lifetimes("xero")["refresh_token_idle"] == "8w4d"
    assert lifetimes("zoho-books-eu")["rotates_refresh_token"] is False
    # Unknown lifetimes stay unset: nothing is guessed.
    assert set(lifetimes("moneybird").values()) == {None}
    twinfield = lifetimes("twinfield")
    assert twinfield["refresh_token"] is None and twinfield["refresh_token_idle"] is None


# -- placeholders -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", OAUTH)
def test_placeholders_fill_every_url(name):
    definition = BUILTINS[name]
    values = templated_values(definition).values()
    used = {p for value in values for p in PLACEHOLDER.findall(value)}
    assert used == set(definition.placeholders), "each declared placeholder is used, only those"
    filled = fill_placeholders(definition, {p: SAMPLES[p] for p in definition.placeholders})
    for field_name, value in templated_values(filled).items():
        assert "{" not in value and "}" not in value, (field_name, value)
    for placeholder in definition.placeholders:
        assert any(SAMPLES[placeholder] in v for v in templated_values(filled).values())


@pytest.mark.parametrize("name", sorted(n for n in OAUTH if BUILTINS[n].placeholders))
def test_a_missing_placeholder_value_names_the_param_flag(name):
    definition = BUILTINS[name]
    for missing in definition.placeholders:
        values = {p: SAMPLES[p] for p in definition.placeholders if p != missing}
        with pytest.raises(UsageError) as caught:
            fill_placeholders(definition, values)
        assert f"{{{missing}}}" in caught.value.message
        assert caught.value.hint == f"pass --param {missing}=VALUE"


def test_placeholders_declared_where_the_url_varies():
    assert set(BUILTINS["business-central"].placeholders) == {"tenant", "environment"}
    assert set(BUILTINS["afas-profit"].placeholders) == {"environment"}
    assert set(BUILTINS["netsuite"].placeholders) == {"account"}


# -- the CLI ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_definitions_show_renders_every_builtin(cli, name):
    definition = BUILTINS[name]
    plain = cli("definitions", "show", name)
    assert plain.exit_code == 0, plain.stderr
    assert f"name:\t{name}\n" in plain.stdout
    assert f"title:\t{definition.title}\n" in plain.stdout
    assert f"classification:\t{definition.classification}\n" in plain.stdout
    assert "source:\tbuilt-in\n" in plain.stdout
    if definition.oauth2 is not None:
        assert f"oauth2.token_endpoint:\t{definition.oauth2.token_endpoint}\n" in plain.stdout
    as_json = cli("definitions", "show", name, "--json")
    assert as_json.exit_code == 0, as_json.stderr
    shown = as_json.json()["definition"]
    assert (shown["name"], shown["kind"], shown["source"]) == (
        name,
        definition.kind.value,
        "built-in",
    )
    assert shown["placeholders"] == dict(definition.placeholders)
    if name not in GENERIC:
        assert shown["setup"] and shown["setup"].strip()


def test_definitions_list_groups_builtins_by_classification(cli):
    table = cli("definitions", tty=True)
    assert table.exit_code == 0, table.stderr
    for classification in ("Accounting", "ERP", "Generic"):
        assert classification in table.stdout
    for name in NAMES:
        assert name in table.stdout
    # Groups in order: Accounting, then ERP, then Generic.
    assert (
        table.stdout.index("Accounting") < table.stdout.index("ERP") < table.stdout.index("Generic")
    )
    listed = cli("definitions", "--json").json()["definitions"]
    keys = [(d["classification"].lower(), d["name"]) for d in listed]
    assert keys == sorted(keys)
    assert {d["name"] for d in listed} == set(NAMES)


def test_documented_override_turns_an_https_only_builtin_into_relay(cli, tmp_path):
    snippet = next(
        text for text in documented_overrides() if text.startswith("[definitions.exact-online-nl]")
    )
    source = tmp_path / "exact-online-nl.toml"
    source.write_text(snippet)
    added = cli("definitions", "add", "--file", str(source))
    assert added.exit_code == 0, added.stderr
    assert "overrides the built-in one" in added.stderr
    configured = cli("definitions", "configure", "exact-online-nl", "--client-id", "app-123")
    assert configured.exit_code == 0, configured.stderr
    shown = cli("definitions", "show", "exact-online-nl", "--json").json()["definition"]
    assert shown["oauth2"]["login_mode"] == "relay"
    assert shown["oauth2"]["redirect_uri"] == "https://auth.example.com/tokenctl/callback"
    assert shown["oauth2"]["client_id"] == "app-123"
    assert shown["lifetimes"]["refresh_margin"] == "30s"
    assert shown["overrides_builtin"] is True


# -- the documentation ------------------------------------------------------------------------


def documented_overrides() -> list[str]:
    """The TOML override files shown on docs/providers/*.md."""
    blocks = []
    for page in sorted(PROVIDER_DOCS.glob("*.md")):
        for block in re.findall(r"```toml\n(.*?)```", page.read_text(), flags=re.S):
            if block.startswith("[definitions."):
                blocks.append(block)
    return blocks


OVERRIDE_FIELDS = {"login_mode", "redirect_uri", "redirect_port", "redirect_host"}


def test_every_documented_override_is_the_builtin_plus_login_settings():
    overrides = documented_overrides()
    assert len(overrides) >= 10
    covered = set()
    for text in overrides:
        parsed = _parse_document(tomllib.loads(text), "docs")
        assert len(parsed) == 1
        ((name, override),) = parsed.items()
        builtin = BUILTINS[name]
        covered.add(name)
        got, want = override.to_dict(), builtin.to_dict()
        for key in ("setup", "source"):
            got.pop(key), want.pop(key)
        got_oauth, want_oauth = got.pop("oauth2"), want.pop("oauth2")
        assert got == want, name
        changed = {k for k in want_oauth if got_oauth[k] != want_oauth[k]}
        assert changed and changed <= OVERRIDE_FIELDS, (name, changed)
        if got_oauth["login_mode"] in ("relay", "paste"):
            assert got_oauth["redirect_uri"].startswith("https://")
        else:
            assert got_oauth["redirect_port"] is not None
    https_only = {"exact-online-nl", "quickbooks-online", "afas-profit", "netsuite"}
    assert https_only <= covered


def test_every_builtin_has_a_documentation_page():
    index = (PROVIDER_DOCS / "index.md").read_text()
    for name in NAMES:
        if name in GENERIC:
            continue
        assert f"`{name}`" in index, name
    for link in re.findall(r"\]\(([a-z0-9-]+\.md)\)", index):
        page = PROVIDER_DOCS / link
        assert page.is_file(), link
        text = page.read_text()
        assert "## Known unknowns" in text and "## Sources" in text, link


def test_configure_sets_login_mode_and_redirect_uri_on_a_builtin(cli):
    result = cli(
        "definitions",
        "configure",
        "exact-online-nl",
        "--client-id",
        "my-app",
        "--login-mode",
        "relay",
        "--redirect-uri",
        "https://auth.example.com/tokenctl/callback",
    )
    assert result.exit_code == 0, result.stderr
    shown = cli("definitions", "show", "exact-online-nl", "--json").json()["definition"]
    assert shown["oauth2"]["login_mode"] == "relay"
    assert shown["oauth2"]["redirect_uri"] == "https://auth.example.com/tokenctl/callback"
    assert shown["oauth2"]["client_id"] == "my-app"
    assert shown["oauth2"]["token_endpoint"] == "https://start.exactonline.nl/api/oauth2/token"
    assert shown["overrides_builtin"] is True
    bad = cli(
        "definitions", "configure", "exact-online-be", "--client-id", "x", "--login-mode", "paste"
    )
    assert bad.exit_code == 1 and "redirect_uri" in bad.stderr


def test_show_explains_the_setup(cli):
    shown = cli("definitions", "show", "exact-online-nl")
    assert "setup:" in shown.stdout and "App Center" in shown.stdout
    tty = cli("definitions", "show", "business-central", tty=True)
    assert "Setup" in tty.stdout and "--param tenant=" in tty.stdout
