"""The token commands in-process: add, list, show, renew, enable/disable, delete."""

from __future__ import annotations

import json

from tests.fakes import START, sealed_rows


def add(cli, name="acme", *extra, secret="s3cret-value", **kw):  # type: ignore[no-untyped-def]
    return cli("add", name, "--definition", "api-key", "--secret-stdin", *extra, input=secret, **kw)


def test_add_then_list_json_has_every_overview_field(cli):
    result = add(cli, "acme", "--description", "Acme BV export", "--expires-in", "30d")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "1\n"
    assert "Added token #1 'acme'" in result.stderr

    listing = cli("list", "--json").json()
    assert listing["schema_version"] == 1
    [token] = listing["tokens"]
    assert token["number"] == 1
    assert token["name"] == "acme"
    assert token["type"] == "API key"
    assert token["description"] == "Acme BV export"
    assert token["status"] == "valid"
    assert token["state"] == "effective"
    assert token["expires_at"] == "2026-12-23T12:00:00Z"
    assert token["secret_stored"] is True
    assert token["log"]["created_by"] == "tester"
    assert token["log"]["created_unit"] == "testhost"
    assert len(token["authentication_code"]) == 19
    assert cli.stored("acme").pass_code  # the secret went to the inventory, sealed
    key_entry = cli("show", "acme", "--json").json()["token"]["secret"]["key_entry"]
    assert list(cli.keyring.entries) == [key_entry]  # one keyring entry: the data key
    assert "s3cret-value" not in json.dumps(listing)


def test_status_follows_the_clock(cli):
    add(cli, "soon", "--expires-in", "3d")
    add(cli, "later", "--expires-at", "2027-06-01")
    add(cli, "never")
    statuses = {t["name"]: t["status"] for t in cli("list", "--json").json()["tokens"]}
    assert statuses == {"soon": "expiring", "later": "valid", "never": "unknown"}
    cli.clock.advance(days=4)
    statuses = {t["name"]: t["status"] for t in cli("list", "--json").json()["tokens"]}
    assert statuses["soon"] == "expired"


def test_expiring_window_comes_from_config(cli):
    cli.home.mkdir(parents=True)
    (cli.home / "config.toml").write_text('expiring_window = "1d"\n')
    add(cli, "soon", "--expires-in", "3d")
    assert cli("list", "--json").json()["tokens"][0]["status"] == "valid"


def test_list_filters(cli):
    add(cli, "a", "--expires-in", "1d")
    add(cli, "b", "--expires-in", "60d")
    cli("disable", "b")
    names = lambda *args: [t["name"] for t in cli("list", "--json", *args).json()["tokens"]]  # noqa: E731
    assert names("--status", "expiring") == ["a"]
    assert names("--status", "expiring", "--status", "valid") == ["a", "b"]
    assert names("--state", "not_effective") == ["b"]
    assert names("--definition", "basic-credentials") == []


def test_list_plain_text_when_piped_and_table_on_tty(cli):
    add(cli, "acme", "--description", "[bold]Acme[/bold]", "--expires-in", "3d")
    piped = cli("list")
    assert piped.stdout.split("\t")[:4] == ["1", "acme", "API key", "[bold]Acme[/bold]"]
    assert "\x1b[" not in piped.stdout
    table = cli("list", tty=True, color=True)
    assert "Name" in table.stdout and "Status" in table.stdout
    assert "[bold]Acme[/bold]" in table.stdout  # user text is not read as markup
    assert "in 3 days" in table.stdout
    assert "\x1b[" in table.stdout  # coloured status


def test_no_color_when_color_disabled(cli):
    add(cli, "acme", "--expires-in", "3d")
    assert "\x1b[" not in cli("list", tty=True, color=False).stdout


def test_empty_list_says_how_to_add(cli):
    result = cli("list")
    assert result.exit_code == 0
    assert result.stdout == ""
    assert "tokenctl add NAME --definition api-key" in result.stderr
    add(cli, "a")
    filtered = cli("list", "--status", "expired")
    assert filtered.stdout == "" and "No tokens match (1 in total" in filtered.stderr


def test_show_by_number_name_and_code_masks_secret(cli):
    add(cli, "acme", "--code", "ACME-CODE-1", secret="p4ss-code")
    for ref in ("1", "acme", "ACME-CODE-1"):
        result = cli("show", ref, "--json")
        assert result.exit_code == 0
        token = result.json()["token"]
        assert token["name"] == "acme"
        assert token["secret"]["stored"] is True
        assert [e["event"] for e in token["history"]] == ["secret set", "created"]
        assert "p4ss-code" not in result.stdout
    text = cli("show", "acme", tty=True)
    assert "value never shown" in text.stdout and "p4ss-code" not in text.stdout
    assert "History" in text.stdout


def test_unknown_ref_is_exit_3(cli):
    result = cli("show", "nope")
    assert result.exit_code == 3
    assert "no token 'nope'" in result.stderr
    assert "Traceback" not in result.stderr


def test_duplicate_name_and_code_are_refused(cli):
    add(cli, "acme", "--code", "CODE-1")
    again = add(cli, "acme")
    assert again.exit_code == 1 and "already exists" in again.stderr
    same_code = add(cli, "other", "--code", "CODE-1")
    assert same_code.exit_code == 1 and "already in use" in same_code.stderr
    shadow = add(cli, "third", "--code", "acme")
    assert shadow.exit_code == 1 and "name of another token" in shadow.stderr
    assert len(sealed_rows(cli.home)) == 1  # refused adds leave no secret behind


def test_mandatory_identifier_is_enforced(cli):
    result = cli("add", "ws", "--definition", "basic-credentials", "--secret-stdin", input="x")
    assert result.exit_code == 2
    assert "requires the identifier" in result.stderr and "--identifier" in result.stderr
    ok = cli(
        "add",
        "ws",
        "--definition",
        "basic-credentials",
        "--identifier",
        "wsuser",
        "--secret-stdin",
        input="x",
    )
    assert ok.exit_code == 0


def test_no_tty_no_prompt_names_the_flag(cli):
    result = cli("add", "acme", "--definition", "api-key")
    assert result.exit_code == 2
    assert "--secret-stdin" in result.stderr
    assert cli("list", "--json").json()["tokens"] == []


def test_hidden_prompt_on_a_tty(cli):
    result = cli("add", "acme", "--definition", "api-key", tty=True, hidden_answer="typed-secret")
    assert result.exit_code == 0, result.stderr
    assert cli.stored("acme").pass_code == "typed-secret"
    assert "typed-secret" not in result.stdout + result.stderr


def test_empty_secret_is_refused(cli):
    result = add(cli, "acme", secret="\n")
    assert result.exit_code == 2 and "empty" in result.stderr


def test_bad_durations_and_times_are_usage_errors(cli):
    assert add(cli, "a", "--expires-in", "soon").exit_code == 2
    assert add(cli, "b", "--expires-at", "31/12/2026").exit_code == 2
    both = add(cli, "c", "--expires-in", "1d", "--expires-at", "2027-01-01")
    assert both.exit_code == 2 and "not both" in both.stderr


def test_invalid_name_is_refused(cli):
    result = add(cli, "123")
    assert result.exit_code == 2 and "invalid token name" in result.stderr


def test_enable_disable_record_history(cli):
    add(cli, "acme")
    assert "now not effective" in cli("disable", "acme").stderr
    assert "already not effective" in cli("disable", "acme").stderr
    assert "now effective" in cli("enable", "1").stderr
    events = [e["event"] for e in cli("show", "acme", "--json").json()["token"]["history"]]
    assert events == ["state changed", "state changed", "secret set", "created"]


def test_delete_asks_on_tty_and_requires_yes_otherwise(cli):
    add(cli, "acme", "--description", "Acme BV's export", "--expires-in", "1d")
    refused = cli("delete", "acme")
    assert refused.exit_code == 2 and "--yes" in refused.stderr
    declined = cli("delete", "acme", tty=True, input="n\n")
    assert declined.exit_code == 1 and "not confirmed" in declined.stderr
    assert cli("show", "acme").exit_code == 0

    deleted = cli("delete", "acme", tty=True, input="y\n")
    assert deleted.exit_code == 0
    assert deleted.stdout == (
        "tokenctl add acme --definition api-key --description 'Acme BV'\"'\"'s export' "
        "--secret-stdin\n"
    )
    assert "its secret was removed" in deleted.stderr
    assert sealed_rows(cli.home) == []
    assert cli("show", "acme").exit_code == 3


def test_numbers_are_never_reused(cli):
    add(cli, "a")
    add(cli, "b")
    cli("delete", "b", "--yes")
    add(cli, "c")
    assert [t["number"] for t in cli("list", "--json").json()["tokens"]] == [1, 3]


def test_renew_replaces_the_pass_code(cli):
    add(cli, "acme", "--expires-in", "1d", secret="old")
    cli.clock.advance(days=2)
    assert cli("list", "--json").json()["tokens"][0]["status"] == "expired"
    result = cli("renew", "acme", "--secret-stdin", "--expires-in", "90d", input="new")
    assert result.exit_code == 0, result.stderr
    token = cli("show", "acme", "--json").json()["token"]
    assert token["status"] == "valid"
    assert token["history"][0]["event"] == "renewed"
    assert cli.stored("acme").pass_code == "new"


def test_add_json_output(cli):
    result = add(cli, "acme", "--json")
    assert result.json()["token"]["name"] == "acme"


def test_keyring_unavailable_is_exit_4_and_stores_nothing(cli):
    cli.keyring.available = False
    result = add(cli, "acme")
    assert result.exit_code == 4
    assert "keyring" in result.stderr
    cli.keyring.available = True
    assert cli("list", "--json").json()["tokens"] == []


def test_list_and_show_never_touch_the_secret_store(cli):
    add(cli, "acme")
    cli.keyring.available = False
    assert cli("list").exit_code == 0
    assert cli("show", "acme").exit_code == 0
    assert cli("definitions").exit_code == 0
    assert cli("check").exit_code == 0
    # A hand-entered token has no grant to revoke: its sealed secret goes with its record.
    delete = cli("delete", "acme", "--yes")
    assert delete.exit_code == 0, delete.stderr
    assert cli("show", "acme").exit_code == 3 and sealed_rows(cli.home) == []


def test_log_information_uses_unit_from_config(cli):
    cli.home.mkdir(parents=True)
    (cli.home / "config.toml").write_text('unit = "finance-team"\n')
    add(cli, "acme")
    log = cli("show", "acme", "--json").json()["token"]["log"]
    assert log["created_unit"] == "finance-team"
    assert log["created_at"] == START.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_broken_config_stops_before_any_secret_is_touched(cli):
    add(cli, "acme", secret="original")
    before = (dict(cli.keyring.entries), sealed_rows(cli.home))
    (cli.home / "config.toml").write_text("unit = 5\n")
    for args, stdin in (
        (["add", "b", "--definition", "api-key", "--secret-stdin"], "x"),
        (["renew", "acme", "--secret-stdin"], "changed"),
        (["delete", "acme", "--yes"], ""),
    ):
        result = cli(*args, input=stdin)
        assert result.exit_code == 1, (args, result.stderr)
        assert "config.toml" in result.stderr
        assert (dict(cli.keyring.entries), sealed_rows(cli.home)) == before, args
    (cli.home / "config.toml").write_text("")
    assert [t["name"] for t in cli("list", "--json").json()["tokens"]] == ["acme"]


def test_name_that_is_another_tokens_code_gets_a_precise_message(cli):
    add(cli, "acme", "--code", "ACME-1")
    result = add(cli, "ACME-1")
    assert result.exit_code == 1
    assert "is the authentication code of token 'acme'" in result.stderr


def test_blank_description_is_stored_as_none(cli):
    add(cli, "acme", "--description", "  ")
    assert cli("show", "acme", "--json").json()["token"]["description"] is None


def test_flags_of_the_other_kind_are_refused(cli, tmp_path):
    refused = cli("add", "k", "--definition", "api-key", "--secret-stdin", "--device", input="x")
    assert refused.exit_code == 2 and "login flags do not apply" in refused.stderr
    assert cli("add", "k", "--definition", "api-key", "--no-login").exit_code == 2
    add(cli, "k")
    renew = cli("renew", "k", "--secret-stdin", "--login", input="y")
    assert renew.exit_code == 2 and "static" in renew.stderr
    source = tmp_path / "o.toml"
    source.write_text(
        '[definitions.o]\ntitle = "O"\nkind = "oauth2"\n[definitions.o.oauth2]\n'
        'token_endpoint = "https://o.example/token"\nclient_id = "c"\n'
    )
    assert cli("definitions", "add", "--file", str(source)).exit_code == 0
    oauth = cli("add", "o1", "--definition", "o", "--no-login", "--expires-in", "30d")
    assert oauth.exit_code == 2 and "apply only to hand-entered tokens" in oauth.stderr
