"""``oauth2.redirect_host`` (a ``localhost`` loopback redirect) and ``oauth2.scope_separator``."""

from __future__ import annotations

import socket
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import pytest

from tokenctl.definitions.model import LoopbackHost, OAuth2Settings, parse_definition
from tokenctl.errors import ConfigError


def oauth_definition(**oauth: object):  # type: ignore[no-untyped-def]
    table = {
        "title": "T",
        "kind": "oauth2",
        "oauth2": {"token_endpoint": "https://t.example/token", **oauth},
    }
    return parse_definition("t", table, "t.toml")


def test_redirect_host_and_scope_separator_are_validated():
    settings = oauth_definition(redirect_host="localhost", scope_separator=",").oauth2
    assert settings.redirect_host is LoopbackHost.LOCALHOST and settings.scope_separator == ","
    default = oauth_definition().oauth2
    assert default.redirect_host is LoopbackHost.IP and default.scope_separator == " "
    with pytest.raises(ConfigError, match=r"oauth2.redirect_host.*'127.0.0.1' or 'localhost'"):
        oauth_definition(redirect_host="0.0.0.0")
    with pytest.raises(ConfigError, match=r"oauth2.scope_separator.*' ' or ','"):
        oauth_definition(scope_separator=";")


def test_comma_separated_scopes_in_the_request_and_read_back():
    from tokenctl.oauth.provider import (
        ClientCredentials,
        Endpoints,
        authorization_url,
        grant_from_response,
    )

    settings = OAuth2Settings(scopes=("A.ALL", "B.READ"), scope_separator=",")
    url = authorization_url(
        ClientCredentials("c"),
        Endpoints(None, "https://t.example/auth", "https://t.example/token"),
        redirect_uri="http://127.0.0.1:1/callback",
        scopes=settings.scopes,
        state="s",
        code_verifier="v" * 43,
        extra={},
        scope_separator=settings.scope_separator,
    )
    assert parse_qs(urlsplit(url).query)["scope"] == ["A.ALL,B.READ"]
    now = datetime(2026, 1, 1, tzinfo=UTC)
    for answered in ("A.ALL,B.READ", "A.ALL, B.READ", "A.ALL B.READ"):
        grant = grant_from_response({"access_token": "x", "scope": answered}, now, (), settings)
        assert grant.scopes == ("A.ALL", "B.READ"), answered
    spaced = OAuth2Settings()
    grant = grant_from_response({"access_token": "x", "scope": "a b"}, now, (), spaced)
    assert grant.scopes == ("a", "b")


def test_zoho_builtins_join_their_scopes_with_commas():
    from tokenctl.definitions.registry import load_builtin_definitions

    builtins = load_builtin_definitions()
    for site in ("com", "eu", "in", "au", "cn", "jp"):
        settings = builtins[f"zoho-books-{site}"].oauth2
        assert settings is not None and settings.scope_separator == ","
        assert len(settings.scopes) == 3 and all("," not in s for s in settings.scopes)
        assert set(settings.effective_required_scopes) == set(settings.scopes)


def test_a_localhost_listener_answers_on_both_loopback_addresses():
    from tokenctl.oauth.loopback import CallbackCheck, LoopbackListener

    listener = LoopbackListener(
        CallbackCheck("s", None, issuer_required=False), host=LoopbackHost.LOCALHOST
    )
    with listener:
        assert listener.redirect_uri == f"http://localhost:{listener.port}/callback"
        assert listener.addresses[0] == f"127.0.0.1:{listener.port}"
        if not socket.has_ipv6 or len(listener.addresses) == 1:
            pytest.skip("no IPv6 loopback on this machine")
        assert listener.addresses[1] == f"[::1]:{listener.port}"
        with socket.create_connection(("::1", listener.port), timeout=5):
            pass


def test_a_fixed_port_taken_on_ipv6_loopback_names_the_flag():
    from tokenctl.oauth.loopback import CallbackCheck, LoopbackListener, PortInUseError

    try:
        squatter = socket.socket(socket.AF_INET6)
        squatter.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        squatter.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback on this machine")
    with squatter:
        squatter.listen()
        port = squatter.getsockname()[1]
        check = CallbackCheck("s", None, issuer_required=False)
        with pytest.raises(PortInUseError) as raised:
            LoopbackListener(check, port=port, host=LoopbackHost.LOCALHOST, definition="xero")
        assert f"[::1]:{port}" in raised.value.message
        assert "definitions configure xero --client-id ID --redirect-port PORT" in (
            raised.value.hint or ""
        )
        # The IP literal host never binds [::1]: the same port is fine there.
        LoopbackListener(check, port=port, host=LoopbackHost.IP).close()
