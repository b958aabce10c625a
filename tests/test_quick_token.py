"""The quick path of ``tokenctl token``: it answers exactly when the full path would.

:func:`quick_access_token` skips the token record and the definition objects; its answer
must be the full path's answer whenever the full path would just hand out the stored
value, and ``None`` (take the full path) in every other case. Checked over generated
token states against :func:`current_access_token` itself.
"""

from __future__ import annotations

import json
import os
import sqlite3
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fakes import Cli, Clock, MemoryKeyring
from tokenctl.context import AppContext
from tokenctl.definitions import DefinitionKind, registry
from tokenctl.errors import DataKeyMissingError, TokenctlError
from tokenctl.inventory.sqlite import SqliteInventory
from tokenctl.iostreams import IOStreams
from tokenctl.models import Actor, LifecycleState, Token, TokenSecrets
from tokenctl.paths import resolve_paths
from tokenctl.services import quick_token, refresh
from tokenctl.services.access import current_access_token
from tokenctl.services.access_decision import AccessDecision, decide_access
from tokenctl.services.quick_token import definition_policies, quick_access_token

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
ACTOR = Actor(user="tester", unit="testhost")

#: User definitions with their own refresh margins (10 minutes, 0 s) and an override of a
#: built-in, next to the built-ins api-key (static), xero (OAuth, default margin) and
#: exact-online-nl (OAuth, 30 s).
USER_DEFINITIONS = """
[definitions.books-10m]
title = "Books with a long margin"
kind = "oauth2"

[definitions.books-10m.oauth2]
authorization_endpoint = "https://books.example/authorize"
token_endpoint = "https://books.example/token"
client_id = "tokenctl"

[definitions.books-10m.lifetimes]
refresh_margin = "10m"

[definitions.books-0s]
title = "Books refreshed only once expired"
kind = "oauth2"

[definitions.books-0s.oauth2]
authorization_endpoint = "https://books.example/authorize"
token_endpoint = "https://books.example/token"
client_id = "tokenctl"

[definitions.books-0s.lifetimes]
refresh_margin = "0s"

[definitions.exact-online-be]
title = "Exact Online (be), overridden with a static kind"
kind = "static"
"""
DEFINITIONS = (
    "api-key",
    "xero",
    "exact-online-nl",
    "exact-online-be",  # a built-in OAuth definition the user's file turns static
    "books-10m",
    "books-0s",
    "no-such-definition",
)
OFFSETS = (None, -3600, -1, 0, 1, 29, 30, 31, 59, 60, 61, 599, 600, 601, 7200)
#: What is stored: nothing, sealed values, sealed values that no longer open (altered
#: bytes, a lost data key), or a legacy keyring entry of tokenctl 0.x (the full path
#: moves it into the inventory: more than a read, so the quick path must decline).
SECRETS: tuple[Any, ...] = (
    None,
    {"access_token": "AT-1"},
    {"pass_code": "PC-1"},
    {"access_token": "AT-2", "pass_code": "PC-2", "refresh_token": "RT"},
    {"access_token": ""},
    {"refresh_token": "RT"},
    ("altered", {"access_token": "AT-3", "pass_code": "PC-3"}),
    ("key lost", {"access_token": "AT-4", "pass_code": "PC-4"}),
    ("legacy", '{"access_token": "AT-5", "pass_code": "PC-5"}'),
    ("legacy", "not json"),
)


class RefreshAttemptedError(Exception):
    """The full path decided to refresh: the quick path must have said ``None``."""


def _no_refresh(*args: Any, **kwargs: Any) -> Any:
    raise RefreshAttemptedError


def full_answer(ctx: AppContext, ref: str) -> Any:
    """What the full path does: the value, an error, or a refresh."""
    try:
        return current_access_token(ctx, ref)
    except TokenctlError as error:
        return error
    except RefreshAttemptedError as attempt:
        return attempt


token_states = st.fixed_dictionaries(
    {
        "definition": st.sampled_from(DEFINITIONS),
        "effective": st.booleans(),
        "secret_set": st.booleans(),
        "invalid": st.booleans(),
        "expires_in": st.sampled_from(OFFSETS),
        "secret": st.sampled_from(SECRETS),
        "ref_by": st.sampled_from(("name", "number", "authentication_code")),
    }
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(state=token_states)
def test_quick_path_answers_exactly_when_the_full_path_would_just_read(
    state: dict[str, Any], monkeypatch_module: pytest.MonkeyPatch
) -> None:
    with tempfile.TemporaryDirectory() as directory:
        home = Path(directory)
        (home / "definitions.toml").write_text(USER_DEFINITIONS)
        keyring = MemoryKeyring()
        inventory = SqliteInventory(home / "inventory.sqlite3", lambda: keyring)
        expires_in = state["expires_in"]
        secret = state["secret"]
        how, values = secret if isinstance(secret, tuple) else ("sealed", secret)
        token = inventory.add(
            Token(
                number=0,
                name="acme",
                authentication_code="ABCD-EFGH-JKLM-NPQR",
                definition=state["definition"],
                state=LifecycleState.EFFECTIVE
                if state["effective"]
                else LifecycleState.NOT_EFFECTIVE,
                expires_at=None if expires_in is None else NOW + timedelta(seconds=expires_in),
                secret_set_at=NOW - timedelta(days=1) if state["secret_set"] else None,
                invalid_at=NOW - timedelta(hours=1) if state["invalid"] else None,
                invalid_reason="revoked" if state["invalid"] else None,
                has_refresh_token=True,
            ),
            ACTOR,
            NOW - timedelta(days=1),
            secrets=TokenSecrets(**values) if isinstance(values, dict) else None,
        )
        inventory.close()
        connection = sqlite3.connect(home / "inventory.sqlite3", isolation_level=None)
        if how == "altered":
            connection.execute(
                "UPDATE token_secrets SET access_token = substr(access_token, 1, 40) || x'00', "
                "pass_code = x'00' || substr(pass_code, 2)"
            )
        elif how == "key lost":
            keyring.entries.clear()
        elif how == "legacy":
            connection.execute("UPDATE tokens SET legacy_secret_ref = 'token-0x'")
            keyring.entries["token-0x"] = values
        connection.close()
        ref = {
            "name": token.name,
            "number": str(token.number),
            "authentication_code": token.authentication_code,
        }[state["ref_by"]]
        ctx = AppContext(
            io=IOStreams.system({}),
            environ={"TOKENCTL_HOME": str(home)},
            clock=lambda: NOW,
            keyring_factory=lambda paths: keyring,
        )
        try:
            quick = quick_access_token(ctx.paths, ref, NOW, keyring.get_text)
            full = full_answer(ctx, ref)
        finally:
            ctx.close()
    if isinstance(full, str) and how != "legacy":
        assert quick == full  # the plain case: the quick path must take it
    else:
        assert quick is None, (state, full)
    # A static token the full path would serve: without the key it says so (exit 4).
    servable = state["effective"] and state["secret_set"] and not state["invalid"]
    unexpired = expires_in is None or expires_in > 0
    if how == "key lost" and servable and unexpired and state["definition"] == "api-key":
        assert isinstance(full, DataKeyMissingError), full


@pytest.fixture(scope="module")
def monkeypatch_module():  # type: ignore[no-untyped-def]
    """Module-wide: the full path's refresh is replaced so no example goes to a network."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(refresh, "refresh_token", _no_refresh)
        yield patch


def test_plain_static_token_is_answered_without_loading_the_definitions(tmp_path):
    cli = Cli(home=tmp_path / "home", clock=Clock(NOW))
    assert cli("add", "key", "--definition", "api-key", "--secret-stdin", input="v1").exit_code == 0
    paths = resolve_paths(cli.home, {})
    assert quick_access_token(paths, "key", NOW, cli.keyring.get_text) == "v1"
    assert paths.definitions_digest.is_file()
    digest = json.loads(paths.definitions_digest.read_text())
    assert digest["policies"]["api-key"] == ["static", None]
    assert digest["policies"]["exact-online-nl"] == ["oauth2", 30]
    # The digest is written once; the next answers read it, not the definitions.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(registry, "load_definitions", _must_not_load)
        assert quick_access_token(paths, "key", NOW, cli.keyring.get_text) == "v1"
        # A digest that is not what tokenctl writes is made again, not trusted.
        digest["policies"]["api-key"] = ["static", "sixty"]
        paths.definitions_digest.write_text(json.dumps(digest))
        with pytest.raises(AssertionError, match="loaded the definitions"):
            quick_access_token(paths, "key", NOW, cli.keyring.get_text)
    assert quick_access_token(paths, "key", NOW, cli.keyring.get_text) == "v1"
    assert json.loads(paths.definitions_digest.read_text())["policies"]["api-key"] == [
        "static",
        None,
    ]


def _must_not_load(*args: Any) -> Any:
    raise AssertionError("loaded the definitions")


def test_digest_follows_edits_of_the_definitions_file(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    paths = resolve_paths(home, {})
    assert "books-10m" not in definition_policies(paths)
    paths.definitions_file.write_text(USER_DEFINITIONS)
    assert definition_policies(paths)["books-10m"] == ("oauth2", 600)
    paths.definitions_file.write_text(USER_DEFINITIONS.replace('"10m"', '"2m"'))
    os.utime(paths.definitions_file, ns=(1, 1))  # even with an old mtime: the size changed
    assert definition_policies(paths)["books-10m"] == ("oauth2", 120)
    # A file that does not load gives no policies: the full path reports the error.
    paths.definitions_file.write_text("[definitions.broken]\nkind = 'nope'\n")
    assert definition_policies(paths) == {}


def test_full_path_reports_what_the_quick_path_declines(tmp_path):
    cli = Cli(home=tmp_path / "home", clock=Clock(NOW))
    assert cli("add", "key", "--definition", "api-key", "--secret-stdin", input="v1").exit_code == 0
    (cli.home / "definitions.toml").write_text("[definitions.broken]\nkind = 'nope'\n")
    result = cli("token", "key")
    assert result.exit_code != 0 and result.stdout == ""
    assert "definitions.toml" in result.stderr


# -- the decision both paths take --------------------------------------------------------

OAUTH = DefinitionKind.OAUTH2
STATIC = DefinitionKind.STATIC
PLAIN = {"effective": True, "secret_set": True, "invalid": False, "expires_at": None}


@pytest.mark.parametrize(
    ("facts", "kind", "margin", "expected"),
    [
        ({}, OAUTH, None, AccessDecision.SERVE),
        ({}, STATIC, None, AccessDecision.SERVE),
        # Failures, in the order their errors are reported.
        ({"effective": False, "secret_set": False}, None, None, AccessDecision.NOT_EFFECTIVE),
        ({"secret_set": False}, None, None, AccessDecision.UNKNOWN_DEFINITION),
        ({"secret_set": False, "invalid": True}, OAUTH, None, AccessDecision.NO_SECRET),
        ({"invalid": True, "expires_at": NOW}, OAUTH, None, AccessDecision.INVALID),
        # A static token has no provider to refuse it: invalid or not, it is served.
        ({"invalid": True}, STATIC, None, AccessDecision.SERVE),
        # OAuth: refresh once at most the margin (default 60 s) is left, expired or not.
        ({"expires_at": NOW + timedelta(seconds=61)}, OAUTH, None, AccessDecision.SERVE),
        ({"expires_at": NOW + timedelta(seconds=60)}, OAUTH, None, AccessDecision.REFRESH),
        ({"expires_at": NOW - timedelta(days=1)}, OAUTH, None, AccessDecision.REFRESH),
        ({"expires_at": NOW + timedelta(seconds=31)}, OAUTH, timedelta(0), AccessDecision.SERVE),
        ({"expires_at": NOW + timedelta(seconds=1)}, OAUTH, timedelta(0), AccessDecision.SERVE),
        ({"expires_at": NOW}, OAUTH, timedelta(0), AccessDecision.REFRESH),
        (
            {"expires_at": NOW + timedelta(minutes=9)},
            OAUTH,
            timedelta(minutes=10),
            AccessDecision.REFRESH,
        ),
        # Static: served until the moment it expires, then refused; no margin.
        (
            {"expires_at": NOW + timedelta(seconds=1)},
            STATIC,
            timedelta(hours=1),
            AccessDecision.SERVE,
        ),
        ({"expires_at": NOW}, STATIC, None, AccessDecision.EXPIRED),
    ],
)
def test_access_decision(facts, kind, margin, expected):
    decision = decide_access(**{**PLAIN, **facts}, kind=kind, margin=margin, now=NOW)
    assert decision is expected


def test_access_decision_is_what_the_quick_path_serves_on(monkeypatch, tmp_path):
    # The quick path serves exactly on SERVE: told otherwise, it declines a plain token.
    cli = Cli(home=tmp_path / "home", clock=Clock(NOW))
    assert cli("add", "key", "--definition", "api-key", "--secret-stdin", input="v1").exit_code == 0
    paths = resolve_paths(cli.home, {})
    assert quick_access_token(paths, "key", NOW, cli.keyring.get_text) == "v1"
    monkeypatch.setattr(quick_token, "decide_access", lambda **_: AccessDecision.REFRESH)
    assert quick_access_token(paths, "key", NOW, cli.keyring.get_text) is None
