"""QuickBooks Online end to end: real tokenctl processes against the Intuit double.

The built-in ``quickbooks-online`` definition is used as docs/providers/quickbooks-online.md
tells a user to: the whole built-in, with login_mode and redirect_uri, saved as an
override with ``definitions add --file`` - here with Intuit's hosts replaced by the
double's (tests/peers/intuit.py), which serves Intuit's paths. The built-in
``quickbooks-online-sandbox`` logs in as shipped (loopback on localhost): its override
only swaps the hosts, and ``definitions configure --redirect-port`` sets the port the
test registered at the double.
"""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import ssl
import subprocess
import sys
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest

from tests.loopback import serving_directory
from tests.peers.intuit import (
    Environment,
    IntuitDouble,
    RegistrationRefused,
    check_redirect_uri,
    running_intuit,
    sign_in_without_browser,
)
from tests.proc import Proc, tokenctl
from tests.test_oauth_chromium import browser_env, with_browser

CLIENT_ID = "ABqbo-production-client"
CLIENT_SECRET = "qbo-production-secret"
REALM = "9341453908059321"
PASTE_URI = "https://auth.example.com/tokenctl/callback"
RELAY_HOST = "relay.qbo.test"
SANDBOX_CLIENT_ID = "ABqbo-development-client"
SANDBOX_CLIENT_SECRET = "qbo-development-secret"
SANDBOX_REALM = "4620816365272025"
BUILTIN = Path(__file__).resolve().parents[1] / "src" / "tokenctl" / "definitions" / "builtin.toml"


@pytest.fixture
def intuit() -> Iterator[IntuitDouble]:
    """A fresh Intuit double with one production app and one user with one company."""
    yield from running_intuit()


@pytest.fixture
def relay_site(tmp_path: Path) -> Iterator[tuple[str, Path, str]]:
    """An HTTPS site on a host name (mapped to 127.0.0.1 in Chromium), self-signed.

    Returns its origin, its document root and the certificate's SPKI hash for Chromium.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, RELAY_HOST)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(RELAY_HOST)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    pem = tmp_path / "relay.pem"
    pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        + cert.public_bytes(serialization.Encoding.PEM)
    )
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    root = tmp_path / "site"
    root.mkdir()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pem)
    with serving_directory(root, context) as port:
        yield (
            f"https://{RELAY_HOST}:{port}",
            root,
            base64.b64encode(hashlib.sha256(spki).digest()).decode(),
        )


def override(double: IntuitDouble, name: str = "quickbooks-online", **login: str) -> dict[str, Any]:
    """The built-in ``name``, hosts swapped for the double's (plus ``login``), as an override."""
    table = tomllib.loads(BUILTIN.read_text())["definitions"][name]
    table.pop("setup")
    oauth = table["oauth2"]
    for key, value in list(oauth.items()):
        if isinstance(value, str) and value.startswith("https://"):
            oauth[key] = double.base_url + urlsplit(value).path
    oauth.update(login)
    return {"definitions": {name: table}}


def set_up_home(tmp_path: Path, env: dict[str, str], double: IntuitDouble, **mode: str) -> Path:
    """A home with the override added and the client configured, as the docs say."""
    import tomli_w

    home = tmp_path / "home"
    source = tmp_path / "quickbooks-online.toml"
    source.write_text(tomli_w.dumps(override(double, **mode)))
    added = tokenctl("definitions", "add", "--file", str(source), home=home, env=env)
    assert added.exit_code == 0, added.stderr
    assert "overrides the built-in" in added.stderr
    configured = tokenctl(
        "definitions", "configure", "quickbooks-online", "--client-id", CLIENT_ID,
        "--client-secret-stdin", home=home, env=env, input=CLIENT_SECRET,
    )  # fmt: skip
    assert configured.exit_code == 0, configured.stderr
    return home


def paste_login(home: Path, env: dict[str, str], double: IntuitDouble, *args: str) -> Proc:
    """``tokenctl add ... --yes`` in paste mode: sign in over HTTP, paste the redirect."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tokenctl", *args, "--yes"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**env, "TOKENCTL_HOME": str(home), "BROWSER": "true"},
    )
    assert process.stdin and process.stderr and process.stdout
    lines: list[str] = []
    authorize = double.base_url + "/connect/oauth2?"
    for line in process.stderr:
        lines.append(line)
        if line.startswith(authorize):
            break
    else:
        process.wait(10)
        pytest.fail("tokenctl printed no authorization URL:\n" + "".join(lines))
    url = line.strip()
    landed = sign_in_without_browser(url, "alice", "alice-password")
    out, err = process.communicate(landed + "\n", timeout=60)
    return Proc(list(args), process.returncode, out, "".join(lines) + err)


def post_token(
    double: IntuitDouble, client: tuple[str, str] = (CLIENT_ID, CLIENT_SECRET), **form: str
) -> tuple[int, dict[str, Any]]:
    """A token request straight to the double, as the app ``client`` (id, secret) itself."""
    basic = base64.b64encode("{}:{}".format(*client).encode()).decode()
    request = urllib.request.Request(
        double.base_url + "/oauth2/v1/tokens/bearer",
        data=urlencode(form).encode(),
        headers={"Authorization": f"Basic {basic}", "Accept": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def userinfo_status(double: IntuitDouble, access_token: str) -> int:
    """What the double's userinfo endpoint answers to ``access_token``."""
    request = urllib.request.Request(
        double.base_url + "/v1/openid_connect/userinfo",
        headers={"Authorization": f"Bearer {access_token}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def token_json(home: Path, env: dict[str, str], name: str) -> dict[str, Any]:
    """``show NAME --json`` of a real tokenctl process: the token object."""
    result = tokenctl("show", name, "--json", home=home, env=env)
    assert result.exit_code == 0, result.stderr
    token: dict[str, Any] = result.json()["token"]
    return token


def iso(text: str) -> datetime:
    """An ISO time of tokenctl's JSON."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_the_doubles_redirect_uri_rules():
    """The portal's rules (REDIRECT_DOC): production https on a host name; sandbox localhost."""
    for uri in (
        "http://auth.example.com/cb",
        "https://127.0.0.1/cb",
        "https://localhost/cb",
        "http://localhost:53682/callback",
    ):
        with pytest.raises(RegistrationRefused):
            check_redirect_uri(uri, Environment.PRODUCTION)
    check_redirect_uri("https://auth.example.com/cb", Environment.PRODUCTION)
    check_redirect_uri("http://localhost:53682/callback", Environment.SANDBOX)
    with pytest.raises(RegistrationRefused):
        check_redirect_uri("http://127.0.0.1:53682/callback", Environment.SANDBOX)


def test_the_built_in_cannot_log_in_loopback_with_production_keys(tmp_path, intuit, real_keyring):
    """Production keys refuse tokenctl's loopback redirect; the built-in says what to do."""
    intuit.register_app(CLIENT_ID, CLIENT_SECRET, Environment.PRODUCTION, (PASTE_URI,))
    with pytest.raises(RegistrationRefused):
        intuit.register_app("other", "s", Environment.PRODUCTION, ("http://127.0.0.1/callback",))
    shown = tokenctl(
        "definitions",
        "show",
        "quickbooks-online",
        home=tmp_path / "h",
        env=real_keyring.child_env(),
    )
    assert shown.exit_code == 0
    assert "definitions configure quickbooks-online --client-id ID --login-mode relay" in (
        shown.stdout
    )


@pytest.mark.peers
def test_paste_login_realm_expiry_rotation_revocation(tmp_path, intuit, real_keyring):
    intuit.register_app(CLIENT_ID, CLIENT_SECRET, Environment.PRODUCTION, (PASTE_URI,))
    intuit.add_user("alice", "alice-password", "alice@example.test", REALM)
    env = real_keyring.child_env()
    home = set_up_home(tmp_path, env, intuit, login_mode="paste", redirect_uri=PASTE_URI)

    # add: the paste login, no flag needed - the override prescribes it.
    added = paste_login(
        home, env, intuit, "add", "acme-qbo", "--definition", "quickbooks-online",
        "--description", "Acme Inc.",
    )  # fmt: skip
    assert added.exit_code == 0, added.stderr
    assert f"The browser then lands on {PASTE_URI}" in added.stderr

    def show() -> dict[str, Any]:
        return token_json(home, env, "acme-qbo")

    # show: the realm recorded as the tenant, the account from userinfo.
    token = show()
    assert token["attributes"]["tenant"] == REALM
    assert token["account"] == "alice@example.test"
    assert token["status"] == "valid" and token["has_refresh_token"]
    # The connection expiry is x_refresh_token_expires_in (100 days) from the login.
    expiry = iso(token["connection_expires_at"])
    assert abs(expiry - (datetime.now(UTC) + timedelta(days=100))) < timedelta(minutes=5)
    plain = tokenctl("show", "acme-qbo", home=home, env=env)
    assert REALM in plain.stdout
    # list: the realm after the account, and the connection expiry.
    listed = tokenctl("list", "--json", home=home, env=env)
    assert listed.exit_code == 0, listed.stderr
    row = next(t for t in listed.json()["tokens"] if t["name"] == "acme-qbo")
    assert row["connection_expires_at"] == token["connection_expires_at"]
    table = tokenctl("list", home=home, env=env)
    assert f"alice@example.test [{REALM}]" in table.stdout

    # renew within the day: Intuit answers with the same refresh token.
    connection = intuit.connection_for(REALM)
    first_refresh = connection.refresh_token
    renewed = tokenctl("renew", "acme-qbo", home=home, env=env)
    assert renewed.exit_code == 0, renewed.stderr
    assert connection.refresh_token == first_refresh and not connection.previous_refresh_tokens
    assert intuit.token_calls("refresh_token") == 1

    # A day later the refresh answers with a new one; the old one is dead from then on.
    intuit.advance(timedelta(hours=25))
    renewed = tokenctl("renew", "acme-qbo", home=home, env=env)
    assert renewed.exit_code == 0, renewed.stderr
    assert connection.previous_refresh_tokens == [first_refresh]
    assert connection.refresh_token != first_refresh
    refused, body = post_token(intuit, grant_type="refresh_token", refresh_token=first_refresh)
    assert (refused, body["error"]) == (400, "invalid_grant")
    history = show()["history"]
    assert any("refresh token rotated" in (event.get("detail") or "") for event in history)
    # tokenctl stored the new one: the next refresh is accepted.
    assert tokenctl("renew", "acme-qbo", home=home, env=env).exit_code == 0
    assert intuit.token_calls("refresh_token") == 4  # three renews, the refused test call

    # Near the five-year cap Intuit's x_refresh_token_expires_in is less than 100 days:
    # the connection expiry follows it, not the rolling 100 days.
    connection.authorized_at -= timedelta(days=5 * 365 - 30)
    assert tokenctl("renew", "acme-qbo", home=home, env=env).exit_code == 0
    expiry = iso(show()["connection_expires_at"])
    left = connection.hard_end - intuit.now()  # what the double sent: under 30 days
    assert timedelta(days=28) < left < timedelta(days=30)
    assert abs(expiry - (datetime.now(UTC) + left)) < timedelta(minutes=5)

    # check --probe: the userinfo endpoint says the access token works.
    checked = tokenctl("check", "acme-qbo", "--probe", home=home, env=env)
    assert checked.exit_code == 0, checked.stdout + checked.stderr
    # token: the current access token, one the double accepts.
    printed = tokenctl("token", "acme-qbo", home=home, env=env)
    assert printed.exit_code == 0, printed.stderr
    assert userinfo_status(intuit, printed.stdout.strip()) == 200

    # The user disconnects the app in QuickBooks: the next refresh is refused.
    intuit.disconnect(REALM)
    failed = tokenctl("renew", "acme-qbo", home=home, env=env)
    assert failed.exit_code == 5, failed.stderr
    assert "invalid_grant" in failed.stderr
    assert "tokenctl renew acme-qbo --login" in failed.stderr
    assert show()["status"] == "invalid"
    checked = tokenctl("check", "acme-qbo", home=home, env=env)
    assert checked.exit_code == 11, checked.stdout + checked.stderr
    assert "renew acme-qbo --login" in checked.stdout + checked.stderr
    # Intuit has no discovery document under its issuer: tokenctl does not look for one.
    assert [path for _, path, _, _ in intuit.calls if "well-known" in path] == []


@pytest.mark.peers
def test_relay_login_in_chromium_and_delete_revokes(
    tmp_path, intuit, real_keyring, chromium, relay_site
):
    origin, root, spki = relay_site
    relay_uri = f"{origin}/tokenctl/callback.html"
    intuit.register_app(CLIENT_ID, CLIENT_SECRET, Environment.PRODUCTION, (relay_uri,))
    intuit.add_user("alice", "alice-password", "alice@example.test", REALM)
    out = tmp_path / "browser"
    env = browser_env(real_keyring.child_env(), out, "alice", "alice-password")
    env["TOKENCTL_TEST_CHROMIUM_FLAGS"] = (
        f"'--host-resolver-rules=MAP {RELAY_HOST} 127.0.0.1' "
        f"--ignore-certificate-errors-spki-list={spki}"
    )
    home = set_up_home(tmp_path, env, intuit, login_mode="relay", redirect_uri=relay_uri)
    page = tokenctl("definitions", "relay-page", home=home, env=env)
    (root / "tokenctl").mkdir()
    (root / "tokenctl" / "callback.html").write_text(page.stdout)

    added, _driver, log = with_browser(
        "add", "acme-qbo", "--definition", "quickbooks-online", home=home, env=env, out=out
    )
    assert added.exit_code == 0, f"{added.stderr}\n{log}"
    assert f"The provider returns to {relay_uri}" in added.stderr
    assert "alice@example.test" in (out / "page.html").read_text()
    token = tokenctl("show", "acme-qbo", "--json", home=home, env=env).json()["token"]
    assert token["attributes"]["tenant"] == REALM

    # delete revokes at Intuit: the JSON request Intuit documents, and the grant is dead.
    delete_revokes_at_intuit(intuit, REALM, "acme-qbo", home, env)


def delete_revokes_at_intuit(
    intuit: IntuitDouble,
    realm: str,
    name: str,
    home: Path,
    env: dict[str, str],
    client: tuple[str, str] = (CLIENT_ID, CLIENT_SECRET),
) -> None:
    """``delete NAME`` sends Intuit's JSON revocation and the realm's grant is dead after."""
    connection = intuit.connection_for(realm)
    deleted = tokenctl("delete", name, "--yes", home=home, env=env)
    assert deleted.exit_code == 0, deleted.stderr
    assert "warning" not in deleted.stderr, deleted.stderr
    content_type, raw = intuit.revocation_requests[-1]
    assert content_type.startswith("application/json")
    assert json.loads(raw) == {"token": connection.refresh_token}
    assert connection.revoked
    refused, body = post_token(
        intuit, client, grant_type="refresh_token", refresh_token=connection.refresh_token
    )
    assert (refused, body["error"]) == (400, "invalid_grant")
    assert tokenctl("show", name, home=home, env=env).exit_code == 3


def free_port() -> int:
    """A port free on 127.0.0.1 now: the one the test "registers" at the double."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.peers
def test_sandbox_keys_log_in_on_the_localhost_loopback(tmp_path, intuit, real_keyring, chromium):
    """The sandbox built-in as shipped: loopback on http://localhost:PORT/callback."""
    import tomli_w

    port = free_port()
    sandbox_uri = f"http://localhost:{port}/callback"
    # The 127.0.0.1 form is refused for sandbox keys (test_the_doubles_redirect_uri_rules):
    # only the localhost URI can be registered, and only it is.
    intuit.register_app(
        SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, Environment.SANDBOX, (sandbox_uri,)
    )
    intuit.add_user("alice", "alice-password", "alice@example.test", SANDBOX_REALM)
    out = tmp_path / "browser"
    env = browser_env(real_keyring.child_env(), out, "alice", "alice-password")
    home = tmp_path / "home"

    # The override only swaps Intuit's hosts for the double's: no login settings.
    source = tmp_path / "quickbooks-online-sandbox.toml"
    source.write_text(tomli_w.dumps(override(intuit, "quickbooks-online-sandbox")))
    added = tokenctl("definitions", "add", "--file", str(source), home=home, env=env)
    assert added.exit_code == 0, added.stderr
    # The one command of the setup text, with the port this test registered.
    configured = tokenctl(
        "definitions", "configure", "quickbooks-online-sandbox",
        "--client-id", SANDBOX_CLIENT_ID, "--client-secret-stdin", "--redirect-port", str(port),
        home=home, env=env, input=SANDBOX_CLIENT_SECRET,
    )  # fmt: skip
    assert configured.exit_code == 0, configured.stderr
    shown = tokenctl(
        "definitions", "show", "quickbooks-online-sandbox", "--json", home=home, env=env
    ).json()["definition"]["oauth2"]
    assert (shown["redirect_host"], shown["redirect_port"]) == ("localhost", port)
    assert shown["login_mode"] in (None, "loopback")

    # add: Chromium signs in at the double, which redirects to localhost:PORT.
    login, _driver, log = with_browser(
        "add", "sandbox-co", "--definition", "quickbooks-online-sandbox",
        home=home, env=env, out=out,
    )  # fmt: skip
    assert login.exit_code == 0, f"{login.stderr}\n--- driver.log\n{log}"
    assert f"Listening for the login on {sandbox_uri}" in login.stderr
    [request] = intuit.authorize_requests
    assert (request["client_id"], request["redirect_uri"]) == (SANDBOX_CLIENT_ID, sandbox_uri)
    assert intuit.token_calls("authorization_code") == 1

    def show() -> dict[str, Any]:
        return token_json(home, env, "sandbox-co")

    # The realm on the redirect is the tenant; the account comes from userinfo.
    token = show()
    assert token["attributes"]["tenant"] == SANDBOX_REALM
    assert token["account"] == "alice@example.test"
    assert token["status"] == "valid" and token["has_refresh_token"]
    assert SANDBOX_REALM in tokenctl("show", "sandbox-co", home=home, env=env).stdout

    # renew: a refresh at the double's token endpoint with the sandbox keys.
    renewed = tokenctl("renew", "sandbox-co", home=home, env=env)
    assert renewed.exit_code == 0, renewed.stderr
    assert intuit.token_calls("refresh_token") == 1
    # token: an access token the double's userinfo endpoint accepts.
    printed = tokenctl("token", "sandbox-co", home=home, env=env)
    assert printed.exit_code == 0, printed.stderr
    assert userinfo_status(intuit, printed.stdout.strip()) == 200

    # check --probe: asks the (sandbox) userinfo endpoint, at the double.
    def userinfo_calls() -> int:
        return sum(1 for _, path, _, _ in intuit.calls if path.endswith("/userinfo"))

    before = userinfo_calls()
    checked = tokenctl("check", "sandbox-co", "--probe", home=home, env=env)
    assert checked.exit_code == 0, checked.stdout + checked.stderr
    assert userinfo_calls() > before

    # delete: the JSON revocation Intuit documents, with the sandbox keys; the grant dies.
    delete_revokes_at_intuit(
        intuit, SANDBOX_REALM, "sandbox-co", home, env, (SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET)
    )


def test_revocation_body_is_validated_and_json_sends_only_the_token():
    """``oauth2.revocation_body``: form (RFC 7009) by default, json on request, else refused."""
    import httpx2

    from tokenctl.definitions.model import RevocationBody, parse_definition
    from tokenctl.errors import ConfigError
    from tokenctl.oauth.provider import ClientCredentials, Endpoints, revoke

    table: dict[str, Any] = {
        "title": "T",
        "kind": "oauth2",
        "oauth2": {"token_endpoint": "https://t.example/token"},
    }
    parsed = parse_definition("t", table, "t.toml")
    assert parsed.oauth2 is not None and parsed.oauth2.revocation_body is RevocationBody.FORM
    table["oauth2"]["revocation_body"] = "xml"
    with pytest.raises(ConfigError, match="must be 'form' or 'json'"):
        parse_definition("t", table, "t.toml")

    seen: list[httpx2.Request] = []

    def answer(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return httpx2.Response(200, json={})

    credentials = ClientCredentials("id", "secret", "client_secret_basic")
    for body in RevocationBody:
        endpoints = Endpoints(
            issuer=None,
            authorization_endpoint=None,
            token_endpoint="https://t.example/token",
            revocation_endpoint="https://t.example/revoke",
            revocation_body=body,
        )
        done, _ = revoke(
            credentials, endpoints, "RT1-abc", "refresh_token", httpx2.MockTransport(answer)
        )
        assert done
    form, as_json = seen
    assert form.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert b"token=RT1-abc" in form.content and b"token_type_hint" in form.content
    assert as_json.headers["Content-Type"] == "application/json"
    assert json.loads(as_json.content) == {"token": "RT1-abc"}
    expected = "Basic " + base64.b64encode(b"id:secret").decode()
    assert form.headers["Authorization"] == as_json.headers["Authorization"] == expected
    # Without Basic the client goes into the JSON document, never appended as form fields.
    json_endpoints = Endpoints(
        issuer=None,
        authorization_endpoint=None,
        token_endpoint="https://t.example/token",
        revocation_endpoint="https://t.example/revoke",
        revocation_body=RevocationBody.JSON,
    )
    for method, wanted in (
        ("none", {"token": "RT1-abc", "client_id": "id"}),
        ("client_secret_post", {"token": "RT1-abc", "client_id": "id", "client_secret": "s3"}),
    ):
        seen.clear()
        secret = None if method == "none" else "s3"
        done, _ = revoke(
            ClientCredentials("id", secret, method),
            json_endpoints,
            "RT1-abc",
            "refresh_token",
            httpx2.MockTransport(answer),
        )
        assert done and json.loads(seen[0].content) == wanted
        assert "Authorization" not in seen[0].headers
