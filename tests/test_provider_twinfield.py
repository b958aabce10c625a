"""Twinfield end to end: the built-in ``twinfield`` definition against its local double.

Real ``tokenctl`` processes, headless Chromium through ``BROWSER``, the real Secret
Service; the double (tests/peers/twinfield.py) stands for ``https://login.twinfield.com``
through an override in the test home's definitions.toml: the built-in copied with its
hosts pointed at the double and the fixed loopback port registered for the client
(docs/providers/twinfield.md, "Override for loopback with a fixed port").
"""

from __future__ import annotations

import socket
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.peers.twinfield import (
    BASE_PATH,
    CLIENT_ID,
    CLIENT_SECRET,
    DEFAULT_CLUSTER,
    PASSWORD,
    USER,
    TwinfieldDouble,
    start_twinfield,
)
from tests.proc import Proc, tokenctl
from tests.test_oauth_chromium import browser_env, with_browser
from tokenctl.definitions.model import parse_definition
from tokenctl.oauth.json_path import dig

BUILTIN = Path(__file__).resolve().parents[1] / "src" / "tokenctl" / "definitions" / "builtin.toml"
TWINFIELD_HOST = "https://login.twinfield.com"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def twinfield() -> Iterator[tuple[TwinfieldDouble, int]]:
    """The double, with the loopback redirect URI of a fixed port registered."""
    port = _free_port()
    double = start_twinfield((f"http://127.0.0.1:{port}/callback",))
    yield double, port
    double.stop()


def _pointed_at(value: Any, base: str) -> Any:
    if isinstance(value, str):
        return value.replace(TWINFIELD_HOST, base)
    if isinstance(value, dict):
        return {k: _pointed_at(v, base) for k, v in value.items()}
    return value


def override_toml(base_url: str, port: int) -> str:
    """The built-in as a user copies it, hosts pointed at ``base_url``, a fixed port."""
    import tomli_w

    builtin = tomllib.loads(BUILTIN.read_text())["definitions"]["twinfield"]
    table = _pointed_at(builtin, base_url)
    table["oauth2"]["redirect_port"] = port
    return tomli_w.dumps({"definitions": {"twinfield": table}})


def _run(*args: str, home: Path, env: dict[str, str], input: str | None = None) -> Proc:
    return tokenctl(*args, home=home, env=env, input=input)


def _configured_home(
    tmp_path: Path, base_url: str, port: int, keyring: Any
) -> tuple[Path, Path, dict[str, str]]:
    """A home whose Twinfield built-in points at the double and has the client configured.

    Returns the home, the browser driver's out directory and the environment.
    """
    home = tmp_path / "home"
    home.mkdir()
    out = tmp_path / "browser"
    env = browser_env(keyring.child_env(), out, USER, PASSWORD)
    (home / "definitions.toml").write_text(override_toml(base_url, port))
    configure = ("definitions", "configure", "twinfield", "--client-id", CLIENT_ID)
    configured = _run(*configure, "--client-secret-stdin", home=home, env=env, input=CLIENT_SECRET)
    assert configured.exit_code == 0, configured.stderr
    return home, out, env


@pytest.mark.peers
def test_twinfield_end_to_end(tmp_path, twinfield, real_keyring, chromium):
    double, port = twinfield
    home, out, env = _configured_home(tmp_path, double.base_url, port, real_keyring)

    # add: loopback login (the built-in's mode) in headless Chromium.
    added, driver, log = with_browser(
        "add", "acme-twf", "--definition", "twinfield", "--description", "Acme BV",
        home=home, env=env, out=out,
    )  # fmt: skip
    assert added.exit_code == 0, f"{added.stderr}\n{log}"
    assert driver["final"] == "ok", log
    [authorize] = double.calls("authorize")
    assert authorize["nonce"] and authorize["state"] and authorize["response_type"] == "code"
    assert authorize["redirect_uri"] == f"http://127.0.0.1:{port}/callback"
    # The cluster was asked for right after the login, as the client, token in the query.
    validations = [r for r in double.requests if r[1].endswith("/accesstokenvalidation")]
    assert len(validations) == 1 and validations[0][3] is True

    # show: the cluster recorded and shown.
    shown = _run("show", "acme-twf", home=home, env=env)
    assert shown.exit_code == 0, shown.stderr
    assert f"Cluster:\t{DEFAULT_CLUSTER}\n" in shown.stdout
    token = _run("show", "acme-twf", "--json", home=home, env=env).json()["token"]
    assert token["attributes"]["cluster"] == DEFAULT_CLUSTER
    assert token["attributes"]["issuer"] == double.issuer
    assert token["status"] == "valid" and token["has_refresh_token"]
    assert token["account"]  # the sub: Twinfield documents no e-mail or name claim

    # list: the table and the JSON.
    listed = _run("list", "--json", home=home, env=env).json()["tokens"]
    assert [(t["name"], t["attributes"]["cluster"]) for t in listed] == [
        ("acme-twf", DEFAULT_CLUSTER)
    ]
    table = _run("list", home=home, env=env)
    assert table.exit_code == 0 and "acme-twf" in table.stdout and "Twinfield" in table.stdout

    # renew: a refresh; the cluster is read again and a moved cluster recorded.
    double.cluster_url = "https://accounting3.twinfield.com"
    renewed = _run("renew", "acme-twf", home=home, env=env)
    assert renewed.exit_code == 0, renewed.stderr
    token = _run("show", "acme-twf", "--json", home=home, env=env).json()["token"]
    assert token["attributes"]["cluster"] == "https://accounting3.twinfield.com"
    assert [e["event"] for e in token["history"]][:2] == ["probed", "renewed"]
    assert double.calls("token") == [
        {"grant_type": "authorization_code"},
        {"grant_type": "refresh_token"},
    ]

    # check --probe: the validation endpoint says the token works.
    checked = _run("check", "acme-twf", "--probe", home=home, env=env)
    assert checked.exit_code == 0, checked.stdout + checked.stderr
    token = _run("show", "acme-twf", "--json", home=home, env=env).json()["token"]
    assert token["probe_result"] == "valid"

    # token: the access token, which the double accepts.
    printed = _run("token", "acme-twf", home=home, env=env)
    assert printed.exit_code == 0, printed.stderr
    access_token = printed.stdout.strip()
    assert double.grant_of_access_token(access_token) is not None

    # The user withdrew the app's access: the refresh is refused, the token marked invalid.
    double.revoke(USER)
    refused = _run("renew", "acme-twf", home=home, env=env)
    assert refused.exit_code == 5, refused.stderr
    assert "invalid_grant" in refused.stderr
    assert "tokenctl renew acme-twf --login" in refused.stderr
    token = _run("show", "acme-twf", "--json", home=home, env=env).json()["token"]
    assert token["status"] == "invalid"
    failing = _run("check", "acme-twf", home=home, env=env)
    assert failing.exit_code == 11, failing.stdout + failing.stderr
    assert "tokenctl renew acme-twf --login" in failing.stdout + failing.stderr

    # delete: Twinfield documents no revocation endpoint; deleted locally.
    deleted = _run("delete", "acme-twf", "--yes", home=home, env=env)
    assert deleted.exit_code == 0, deleted.stderr
    assert _run("show", "acme-twf", home=home, env=env).exit_code == 3


@pytest.mark.peers
def test_probe_of_a_revoked_token_records_invalid(tmp_path, twinfield, real_keyring, chromium):
    double, port = twinfield
    home, out, env = _configured_home(tmp_path, double.base_url, port, real_keyring)
    added, _driver, log = with_browser(
        "add", "acme-twf", "--definition", "twinfield", home=home, env=env, out=out
    )
    assert added.exit_code == 0, f"{added.stderr}\n{log}"
    # renew --all (the concurrent refresh) reads the cluster again too.
    double.cluster_url = "https://accounting4.twinfield.com"
    bulk = _run("renew", "--all", home=home, env=env)
    assert bulk.exit_code == 0, bulk.stdout + bulk.stderr
    token = _run("show", "acme-twf", "--json", home=home, env=env).json()["token"]
    assert token["attributes"]["cluster"] == "https://accounting4.twinfield.com"
    double.revoke(USER)
    # The access token has not expired, so no refresh: the validation endpoint answers 400.
    probed = _run("check", "acme-twf", "--probe", home=home, env=env)
    assert probed.exit_code == 11, probed.stdout + probed.stderr
    token = _run("show", "acme-twf", "--json", home=home, env=env).json()["token"]
    assert token["probe_result"] == "invalid" and token["status"] == "invalid"
    assert "answered HTTP 400" in token["invalid_reason"]


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_the_double_refuses_an_authorization_request_without_nonce(twinfield):
    double, port = twinfield
    query = {
        "client_id": CLIENT_ID,
        "redirect_uri": f"http://127.0.0.1:{port}/callback",
        "response_type": "code",
        "scope": "openid twf.user offline_access",
        "state": "s",
    }
    url = f"{double.base_url}{BASE_PATH}/connect/authorize?"
    status, page = _get(url + urlencode(query))
    assert status == 400 and "nonce is required" in page
    status, page = _get(url + urlencode({**query, "nonce": "n"}))
    assert status == 200 and "data-page='login'" in page


def test_the_validation_endpoint_wants_the_client(twinfield):
    double, _port = twinfield
    status, body = _get(f"{double.base_url}{BASE_PATH}/connect/accesstokenvalidation?token=x")
    assert status == 401 and "denied" in body


def test_dotted_keys_are_matched_whole_and_nested_paths_still_work():
    answer = {"twf.clusterUrl": "https://c", "d": {"results": [{"CurrentDivision": 42}]}}
    assert dig(answer, "twf.clusterUrl") == "https://c"
    assert dig(answer, "d.results.0.CurrentDivision") == "42"
    assert dig({"a": {"b.c": {"d": "x"}}}, "a.b.c.d") == "x"
    # The longest key that leads somewhere wins; a dead end falls back to shorter keys.
    assert dig({"a.b": {}, "a": {"b": "y"}}, "a.b") == "y"
    assert dig({"a.b": {}}, "a.b") is None and dig({"a": True}, "a") is None
    assert dig({"a.b": "whole", "a": {"b": "nested"}}, "a.b") == "whole"
    assert dig(answer, "twf.nothing") is None and dig(answer, "d.results.5") is None


def test_probe_token_parameter_and_always_are_validated():
    table = {
        "title": "T",
        "kind": "oauth2",
        "oauth2": {
            "token_endpoint": "https://t.example/token",
            "probe_url": "https://t.example/validate",
            "probe_token_parameter": "token",
            "probe_attributes": {"cluster": "twf.clusterUrl"},
            "probe_attributes_always": True,
        },
    }
    settings = parse_definition("t", table, "t.toml").oauth2
    assert settings is not None
    assert settings.probe_token_parameter == "token" and settings.probe_attributes_always
    bad = {**table, "oauth2": {**table["oauth2"], "probe_attributes_always": "yes"}}
    from tokenctl.errors import ConfigError

    with pytest.raises(ConfigError, match="probe_attributes_always': must be true or false"):
        parse_definition("t", bad, "t.toml")
