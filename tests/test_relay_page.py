"""The relay page forwards to the definition's fixed port by default (docs/login.md)."""

from __future__ import annotations


def _definition(cli, tmp_path, name, port=None):  # type: ignore[no-untyped-def]
    source = tmp_path / f"{name}.toml"
    source.write_text(
        f"[definitions.{name}]\n"
        'title = "Acme"\nclassification = "Test"\nkind = "oauth2"\n'
        f"[definitions.{name}.oauth2]\n"
        'token_endpoint = "https://acme.example/token"\n'
        'authorization_endpoint = "https://acme.example/auth"\nclient_id = "c"\n'
        'login_mode = "relay"\nredirect_uri = "https://tokens.example.com/callback.html"\n'
        + (f"redirect_port = {port}\n" if port is not None else "")
    )
    assert cli("definitions", "add", "--file", str(source)).exit_code == 0


def test_a_definition_with_redirect_port_gets_the_fixed_port_page_by_default(cli, tmp_path):
    _definition(cli, tmp_path, "fixed", port=8765)
    result = cli("definitions", "relay-page", "fixed")
    assert result.exit_code == 0, result.stderr
    assert "var fixedPort = 8765;" in result.stdout
    assert "forwards only to http://127.0.0.1:8765/callback" in result.stderr
    assert "warning" not in result.stderr
    assert cli("definitions", "relay-page", "fixed", "--port", "8765").stdout == result.stdout
    mismatch = cli("definitions", "relay-page", "fixed", "--port", "9999")
    assert mismatch.exit_code == 2 and "differs from definition 'fixed'" in mismatch.stderr


def test_without_a_fixed_port_the_page_says_what_it_exposes(cli, tmp_path):
    _definition(cli, tmp_path, "roaming")
    for args in (("roaming",), ()):
        result = cli("definitions", "relay-page", *args)
        assert result.exit_code == 0, result.stderr
        assert "var fixedPort = 0;" in result.stdout
        assert "warning: the page forwards to whichever 127.0.0.1 port" in result.stderr
        assert "--redirect-port PORT" in result.stderr
    assert "var fixedPort = 8765;" in cli("definitions", "relay-page", "--port", "8765").stdout


def test_unusable_ports_and_names_are_clear_errors(cli, tmp_path):
    _definition(cli, tmp_path, "low", port=80)
    low = cli("definitions", "relay-page", "low")
    assert low.exit_code == 2 and "only to ports 1024-65535, not 80" in low.stderr
    missing = cli("definitions", "relay-page", "nope")
    assert missing.exit_code == 3 and "no definition named 'nope'" in missing.stderr
