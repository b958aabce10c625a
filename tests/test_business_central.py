"""Business Central through the built-in definition, against the Microsoft identity double.

The double (tests/peers/microsoft.py) behaves as Microsoft documents the identity platform
v2.0 and the Business Central API; the definition is the built-in ``business-central``,
with only its hosts pointed at the double by an override in definitions.toml, as a user
who copies the built-in's table and edits its URLs would write it.
"""

from __future__ import annotations

import json
import tomllib
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.fakes import Cli
from tests.oauth_support import RealClock, query_of
from tests.peers.microsoft import BC_SCOPE, MicrosoftDouble, sign_in
from tests.proc import tokenctl
from tests.test_oauth_chromium import browser_env, with_browser

USER, PASSWORD = "adele@contoso.test", "adele-password"
#: Where the built-in's URLs point, and what stands for each in the tests.
LOGIN_HOST, API_HOST = (
    "https://login.microsoftonline.com",
    "https://api.businesscentral.dynamics.com",
)


@pytest.fixture
def microsoft() -> Iterator[MicrosoftDouble]:
    """The identity platform and Business Central for one tenant with one user."""
    double = MicrosoftDouble()
    double.add_user(USER, PASSWORD, "Adele Vance", "adele.vance@contoso.test")
    with double:
        yield double


def override_toml(double: MicrosoftDouble) -> str:
    """The built-in ``business-central`` table with its hosts pointed at the double.

    Only hosts change: every other field (scopes, placeholders, lifetimes, probe path) is
    the built-in's, so what the double reveals about them is tested, not worked around.
    The scopes keep Microsoft's resource URI, which names the API, not a host to call.
    """
    import tomli_w

    from tokenctl.definitions.registry import BUILTIN_FILE

    table = tomllib.loads(BUILTIN_FILE.read_text())["definitions"]["business-central"]
    oauth = table["oauth2"]
    for key, value in oauth.items():
        if isinstance(value, str) and value.startswith("https://"):
            assert value.startswith((LOGIN_HOST + "/", API_HOST + "/")), (key, value)
            oauth[key] = value.replace(LOGIN_HOST, double.login_base).replace(
                API_HOST, double.api_base
            )
    return tomli_w.dumps({"definitions": {"business-central": table}})


def configure_home(home: Path, env: dict[str, str], double: MicrosoftDouble) -> None:
    """definitions.toml with the override, then the client id as the setup text says."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "definitions.toml").write_text(override_toml(double))
    configured = tokenctl(
        "definitions", "configure", "business-central", "--client-id", double.client_id,
        home=home, env=env,
    )  # fmt: skip
    assert configured.exit_code == 0, configured.stderr


def refresh_at_double(double: MicrosoftDouble, refresh_token: str) -> dict[str, Any]:
    """A refresh at the double's token endpoint, as any client would send it."""
    request = urllib.request.Request(
        f"{double.login_base}/{double.tenant_id}/oauth2/v2.0/token",
        data=urlencode(
            {"grant_type": "refresh_token", "refresh_token": refresh_token,
             "client_id": double.client_id}
        ).encode(),
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=10) as response:
        answer: dict[str, Any] = json.loads(response.read())
        return answer


def stored_set(home: Path) -> Any:
    """The token set tokenctl stored for ``bc`` (read with the real keyring's data key)."""
    from tests.fakes import stored_secrets
    from tokenctl.secrets.keyring_store import OsKeyring

    keyring = OsKeyring()
    try:
        sealed = stored_secrets(home, "bc", keyring)
    finally:
        keyring.close()
    assert sealed is not None
    return sealed


@pytest.mark.peers
def test_business_central_end_to_end(real_keyring, chromium, microsoft, tmp_path):
    double = microsoft
    home, out = tmp_path / "home", tmp_path / "browser"
    env = browser_env(real_keyring.child_env(), out, USER, PASSWORD)
    configure_home(home, env, double)

    def run(*args: str) -> Any:
        return tokenctl(*args, home=home, env=env)

    # add: the loopback login in headless Chromium, with the tenant and environment.
    added, driver, log = with_browser(
        "add", "bc", "--definition", "business-central", "--description", "Contoso BC",
        "--param", f"tenant={double.tenant_id}", "--param", "environment=Production",
        home=home, env=env, out=out,
    )  # fmt: skip
    assert added.exit_code == 0, f"{added.stderr}\n--- driver.log\n{log}"
    assert driver["final"] == "ok", log
    [authorize] = double.authorize_requests
    assert authorize["code_challenge_method"] == "S256" and authorize["code_challenge"]
    assert authorize["prompt"] == "login" and authorize["nonce"]
    assert authorize["redirect_uri"].startswith("http://127.0.0.1:")
    assert set(authorize["scope"].split()) == {BC_SCOPE, "offline_access", "openid", "profile",
                                               "email"}  # fmt: skip
    [redeem] = double.token_requests
    assert redeem["grant_type"] == "authorization_code" and redeem["code_verifier"]
    assert "client_secret" not in redeem  # a public client
    # Microsoft echoes only the resource scope (docs/providers/business-central.md).
    assert double.token_responses[0]["scope"] == BC_SCOPE
    assert "missing" not in added.stderr  # no "missing scopes" warning

    # list: valid, not insufficient; the account with the tenant.
    [listed] = run("list", "--json").json()["tokens"]
    assert listed["status"] == "valid", listed
    assert listed["account"] == "adele.vance@contoso.test"
    assert listed["missing_scopes"] == []

    # show: the tenant and environment recorded and shown.
    token = run("show", "bc", "--json").json()["token"]
    assert token["attributes"]["tenant"] == double.tenant_id
    assert token["attributes"]["environment"] == "Production"
    assert token["attributes"]["issuer"] == double.issuer()
    assert token["granted_scopes"] == [BC_SCOPE]
    assert token["has_refresh_token"] is True and token["status"] == "valid"
    shown = run("show", "bc").stdout
    assert double.tenant_id in shown and "Production" in shown

    # The ~2,900-character access token came through the store intact.
    login_set = stored_set(home)
    issued = double.token_responses[0]
    assert len(issued["access_token"]) >= 2900
    assert login_set.access_token == issued["access_token"]
    assert login_set.refresh_token == issued["refresh_token"]

    # renew: a new refresh token is stored; the old one stays valid at Microsoft.
    renewed = run("renew", "bc")
    assert renewed.exit_code == 0, renewed.stderr
    refresh_request = double.token_requests[-1]
    assert refresh_request["grant_type"] == "refresh_token"
    assert refresh_request["refresh_token"] == login_set.refresh_token
    assert "client_secret" not in refresh_request
    renewed_set = stored_set(home)
    assert renewed_set.refresh_token == double.token_responses[-1]["refresh_token"]
    assert renewed_set.refresh_token != login_set.refresh_token
    assert renewed_set.access_token == double.token_responses[-1]["access_token"]
    assert refresh_at_double(double, login_set.refresh_token)["access_token"]  # still valid
    assert run("show", "bc", "--json").json()["token"]["status"] == "valid"

    # check --probe: the companies of the environment, with the stored access token.
    checked = run("check", "--probe")
    assert checked.exit_code == 0, checked.stdout + checked.stderr
    path, bearer = double.api_requests[-1]
    assert path == "/v2.0/Production/api/v2.0/companies"
    assert bearer == renewed_set.access_token
    assert run("show", "bc", "--json").json()["token"]["probe_result"] == "valid"

    # token: the stored access token, as Microsoft issued it.
    printed = run("token", "bc")
    assert printed.exit_code == 0, printed.stderr
    assert printed.stdout.strip() == renewed_set.access_token

    # Revoked at Microsoft: the refresh is refused, the token is marked invalid.
    assert double.revoke_user(USER) == 1
    refused = run("renew", "bc")
    assert refused.exit_code == 5, refused.stderr
    assert "invalid_grant" in refused.stderr and "AADSTS50173" in refused.stderr
    assert "tokenctl renew bc --login" in refused.stderr
    assert run("show", "bc", "--json").json()["token"]["status"] == "invalid"
    failing = run("check")
    assert failing.exit_code == 11, failing.stdout + failing.stderr
    assert "tokenctl renew bc --login" in failing.stdout + failing.stderr

    # delete: Microsoft has no revocation endpoint, so only the local copy goes.
    deleted = run("delete", "bc", "--yes")
    assert deleted.exit_code == 0, deleted.stderr
    assert "revocation endpoint" in deleted.stderr
    assert run("list", "--json").json()["tokens"] == []


# -- in process: the same double, quicker, for the edges ------------------------------------


@pytest.fixture
def bcli(tmp_path, microsoft) -> Cli:
    """The CLI in-process (wall clock) with the override and the client id."""
    cli = Cli(home=tmp_path / "home", clock=RealClock())  # type: ignore[arg-type]
    cli.home.mkdir(parents=True)
    (cli.home / "definitions.toml").write_text(override_toml(microsoft))
    configured = cli("definitions", "configure", "business-central", "--client-id",
                     microsoft.client_id)  # fmt: skip
    assert configured.exit_code == 0, configured.stderr
    return cli


def add_bc(cli: Cli, double: MicrosoftDouble, name: str = "bc", *extra: str) -> Any:
    """``add`` through the built-in, the user signing in at the double."""
    cli.browser = lambda url: sign_in(url, USER, PASSWORD)
    try:
        return cli(
            "add", name, "--definition", "business-central", "--yes",
            "--param", f"tenant={double.tenant_id}", "--param", "environment=Production", *extra,
        )  # fmt: skip
    finally:
        cli.browser = None


def test_the_long_access_token_round_trips_through_the_store(bcli, microsoft):
    added = add_bc(bcli, microsoft)
    assert added.exit_code == 0, added.stderr
    for response in (microsoft.token_responses[-1], None):
        if response is None:  # and once more after a refresh
            assert bcli("renew", "bc").exit_code == 0
            response = microsoft.token_responses[-1]
        access = response["access_token"]
        assert 2890 <= len(access) <= 2950 and access.count(".") == 2  # JWT-shaped
        stored = bcli.stored("bc")
        assert stored is not None and stored.access_token == access
        assert bcli("token", "bc").stdout == access + "\n"


def test_a_discovered_microsoft_definition_is_not_insufficient(tmp_path, microsoft):
    """The issue's case: discovery, asking for the OpenID scopes Microsoft never echoes."""
    cli = Cli(home=tmp_path / "home", clock=RealClock())  # type: ignore[arg-type]
    scopes = ["openid", "profile", "email", "offline_access", BC_SCOPE]
    added = cli(
        "definitions", "add", "contoso-bc", "--issuer", microsoft.issuer(),
        "--client-id", microsoft.client_id, *(a for s in scopes for a in ("--scope", s)),
    )  # fmt: skip
    assert added.exit_code == 0, added.stderr
    shown = cli("definitions", "show", "contoso-bc", "--json").json()["definition"]["oauth2"]
    assert shown["required_scopes"] == [BC_SCOPE]  # the login's own scopes are not required
    cli.browser = lambda url: sign_in(url, USER, PASSWORD)
    login = cli("add", "bc", "--definition", "contoso-bc", "--yes")
    assert login.exit_code == 0, login.stderr
    assert "missing" not in login.stderr
    token = cli("show", "bc", "--json").json()["token"]
    assert token["granted_scopes"] == [BC_SCOPE]
    assert token["status"] == "valid" and token["missing_scopes"] == []
    assert cli("check").exit_code == 0


def test_a_refresh_token_unused_for_90_days_is_refused_and_marks_the_token(bcli, microsoft):
    assert add_bc(bcli, microsoft).exit_code == 0
    stored = bcli.stored("bc")
    assert stored is not None and stored.refresh_token
    microsoft.age_refresh_token(stored.refresh_token, 91 * 86400)
    refused = bcli("renew", "bc")
    assert refused.exit_code == 5
    assert "AADSTS700082" in refused.stderr and "tokenctl renew bc --login" in refused.stderr
    assert bcli("show", "bc", "--json").json()["token"]["status"] == "invalid"
    assert bcli("check").exit_code == 11


def test_the_old_refresh_token_stays_valid_after_a_refresh(bcli, microsoft):
    assert add_bc(bcli, microsoft).exit_code == 0
    first = microsoft.token_responses[-1]["refresh_token"]
    assert bcli("renew", "bc").exit_code == 0
    second = microsoft.token_responses[-1]["refresh_token"]
    assert second != first and bcli.stored("bc").refresh_token == second
    assert microsoft.refresh_token_usable(first) and microsoft.refresh_token_usable(second)
    # The next refresh sends the new one.
    assert bcli("renew", "bc").exit_code == 0
    assert microsoft.token_requests[-1]["refresh_token"] == second


def test_the_login_url_and_listing_name_the_tenant(bcli, microsoft):
    added = add_bc(bcli, microsoft)
    assert added.exit_code == 0, added.stderr
    [request] = microsoft.authorize_requests
    assert request["client_id"] == microsoft.client_id
    url = next(line for line in added.stderr.splitlines() if "/oauth2/v2.0/authorize?" in line)
    assert url.strip().startswith(f"{microsoft.login_base}/{microsoft.tenant_id}/oauth2/v2.0/")
    assert query_of(url.strip())["response_type"] == "code"
    listed = bcli("list", tty=True).stdout
    assert f"[{microsoft.tenant_id}]" in listed


def test_a_tenant_domain_name_is_refused_before_the_browser_opens(bcli, microsoft):
    """Microsoft accepts the domain in URLs but names the tenant by id in its issuer."""
    opened: list[str] = []
    bcli.browser = opened.append
    refused = bcli(
        "add", "bc", "--definition", "business-central", "--yes",
        "--param", f"tenant={microsoft.tenant_domain}", "--param", "environment=Production",
    )  # fmt: skip
    assert refused.exit_code == 5, refused.stderr
    assert f"names issuer '{microsoft.issuer()}'" in refused.stderr
    assert "--param tenant" in refused.stderr and "GUID" in refused.stderr
    assert opened == [] and microsoft.authorize_requests == []
    assert bcli("list", "--json").json()["tokens"] == []
