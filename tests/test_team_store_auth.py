"""Logging in to the team store by AppRole and JWT, and keeping the store token fresh,
against the real OpenBao dev server: real `tokenctl` processes for the logins (the
secret id and the identity token from the environment, GitHub Actions' endpoint stood in
for by a local HTTP server), in-process runs that outlast the store token's TTL."""

from __future__ import annotations

import json
import os
import threading
import time
import tomllib
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import hvac
import pytest

from tests.fakes import Cli
from tests.oauth_support import add_books_token, write_books
from tests.peers.openbao import OpenBao
from tests.proc import Proc, tokenctl
from tests.test_oauth_fast import TOKEN_URL, MockProvider
from tokenctl.errors import ExitCode, SecretStoreError
from tokenctl.store.openbao.auth import AppRoleLogin, JwtLogin
from tokenctl.store.openbao.inventory import OpenBaoInventory

pytestmark = pytest.mark.peers

SUBJECT = "repo:acme/infra:ref:refs/heads/main"


def _policy(bao: OpenBao, mount: str) -> str:
    """A policy that may do everything with the team inventories of ``mount``."""
    name = f"team-{mount}"
    bao.write_policy(
        name,
        f'path "{mount}/*" {{ capabilities = ["create", "read", "update", "delete", "list"] }}',
    )
    return name


def _env(home: Path, **variables: str) -> dict[str, str]:
    """No store token at all (no BAO_TOKEN, no ~/.vault-token): only the login's variables."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("BAO_", "VAULT_", "TOKENCTL_", "ACTIONS_"))
    }
    env.update(HOME=str(home), PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring")
    env.update(variables)
    return env


def _config(home: Path, bao: OpenBao, mount: str, **login: str) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    settings = "".join(f'{key} = "{value}"\n' for key, value in login.items())
    config = home / "config.toml"
    config.write_text(
        f'[store]\nkind = "openbao"\naddress = "{bao.address}"\nmount = "{mount}"\n'
        f'path = "acme"\n{settings}',
        encoding="utf-8",
    )
    return config


def _no_secret_shown(result: Proc, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in result.stdout and secret not in result.stderr
    assert "Traceback" not in result.stderr


def _role(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# -- AppRole -------------------------------------------------------------------------------


def test_approle_login_serves_the_commands(tmp_path, openbao, openbao_kv):
    role_id, secret_id = openbao.approle_role(_role("cron"), [_policy(openbao, openbao_kv)])
    home = tmp_path / "tokenctl"
    _config(home, openbao, openbao_kv, auth="approle", role=role_id)
    env = _env(tmp_path, TOKENCTL_APPROLE_SECRET_ID=secret_id)
    added = tokenctl(
        "add", "acme", "--definition", "api-key", "--secret-stdin", home=home, env=env, input="p4"
    )
    assert added.exit_code == 0, added.stderr
    listed = tokenctl("list", "--json", home=home, env=env)
    assert listed.exit_code == 0, listed.stderr
    assert [t["name"] for t in listed.json()["tokens"]] == ["acme"]
    served = tokenctl("token", "acme", home=home, env=env)
    assert (served.exit_code, served.stdout) == (0, "p4\n"), served.stderr
    status = tokenctl("store", "status", "--json", home=home, env=env)
    assert status.exit_code == 0, status.stderr
    facts = status.json()["store"]
    assert facts["auth"] == {"method": "approle", "mount": "approle", "role": role_id}
    assert facts["identity"]["display_name"] == "approle"
    for result in (added, listed, served, status):
        _no_secret_shown(result, secret_id)
    # The secret id from a file works the same (cron: kept out of the crontab).
    secret_file = tmp_path / "secret-id"
    secret_file.write_text(secret_id + "\n", encoding="utf-8")
    from_file = tokenctl(
        "token",
        "acme",
        home=home,
        env=_env(tmp_path, TOKENCTL_APPROLE_SECRET_ID_FILE=str(secret_file)),
    )
    assert (from_file.exit_code, from_file.stdout) == (0, "p4\n"), from_file.stderr


def test_approle_login_refused_is_exit_4_naming_what_is_needed(tmp_path, openbao, openbao_kv):
    name = _role("once")
    role_id, secret_id = openbao.approle_role(
        name, [_policy(openbao, openbao_kv)], secret_id_num_uses=1
    )
    home = tmp_path / "tokenctl"
    config = _config(home, openbao, openbao_kv, auth="approle", role=role_id)
    env = _env(tmp_path, TOKENCTL_APPROLE_SECRET_ID=secret_id)
    first = tokenctl("list", home=home, env=env)
    assert first.exit_code == 0, first.stderr
    used_up = tokenctl(
        "add", "acme", "--definition", "api-key", "--secret-stdin", home=home, env=env, input="p"
    )
    assert used_up.exit_code == 4, used_up.stderr
    assert (
        f"the team store {openbao.address} refused the AppRole login (role id {role_id!r}, "
        "auth/approle): invalid role or secret ID"
    ) in used_up.stderr
    assert "may have expired or been used up" in used_up.stderr
    _no_secret_shown(used_up, secret_id)
    debug = tokenctl("--debug", "list", home=home, env=env)  # a traceback, but no secret
    assert debug.exit_code == 4 and "Traceback" in debug.stderr
    assert secret_id not in debug.stderr + debug.stdout
    # Nothing was written: a new login sees no token.
    fresh = openbao.approle_secret_id(name)
    listed = tokenctl(
        "list", "--json", home=home, env=_env(tmp_path, TOKENCTL_APPROLE_SECRET_ID=fresh)
    )
    assert listed.exit_code == 0, listed.stderr
    assert listed.json()["tokens"] == []
    unknown = tokenctl("list", home=home, env=_env(tmp_path, TOKENCTL_APPROLE_SECRET_ID="nope"))
    assert unknown.exit_code == 4 and "invalid role or secret ID" in unknown.stderr
    config.write_text(
        config.read_text(encoding="utf-8") + 'auth_mount = "no-such-approle"\n', encoding="utf-8"
    )
    no_mount = tokenctl("list", home=home, env=env)
    assert no_mount.exit_code == 4, no_mount.stderr
    assert "auth/no-such-approle" in no_mount.stderr
    assert "is an auth method mounted at auth/no-such-approle?" in no_mount.stderr
    missing = tokenctl("list", home=home, env=_env(tmp_path))
    assert missing.exit_code == 4
    assert "no secret id for the AppRole login" in missing.stderr
    for result in (unknown, no_mount, missing):
        _no_secret_shown(result, secret_id)


# -- JWT -----------------------------------------------------------------------------------


def test_jwt_login_with_the_right_and_a_wrong_audience(tmp_path, openbao, openbao_kv):
    role = _role("ci")
    openbao.jwt_role(role, [_policy(openbao, openbao_kv)], audience="tokenctl", subject=SUBJECT)
    home = tmp_path / "tokenctl"
    _config(home, openbao, openbao_kv, auth="jwt", role=role)
    right = openbao.sign_jwt({"aud": "tokenctl", "sub": SUBJECT})
    listed = tokenctl("list", "--json", home=home, env=_env(tmp_path, TOKENCTL_STORE_JWT=right))
    assert listed.exit_code == 0, listed.stderr
    assert listed.json()["tokens"] == []
    wrong = openbao.sign_jwt({"aud": "someone-else", "sub": SUBJECT})
    refused = tokenctl(
        "add",
        "acme",
        "--definition",
        "api-key",
        "--secret-stdin",
        home=home,
        env=_env(tmp_path, TOKENCTL_STORE_JWT=wrong),
        input="p",
    )
    assert refused.exit_code == 4, refused.stderr
    assert (
        f"the team store {openbao.address} refused the JWT login (role {role!r}, auth/jwt): "
        "error validating token: invalid audience (aud) claim"
    ) in refused.stderr
    assert "carry the audience and claims" in refused.stderr
    _no_secret_shown(refused, wrong, right)
    # The identity token from a file; nothing was added by the refused run.
    jwt_file = tmp_path / "id-token"
    jwt_file.write_text(right, encoding="utf-8")
    again = tokenctl(
        "list", "--json", home=home, env=_env(tmp_path, TOKENCTL_STORE_JWT_FILE=str(jwt_file))
    )
    assert again.exit_code == 0, again.stderr
    assert again.json()["tokens"] == []
    unknown_role = _config(home, openbao, openbao_kv, auth="jwt", role="no-such-role")
    assert unknown_role.exists()
    unknown = tokenctl("list", home=home, env=_env(tmp_path, TOKENCTL_STORE_JWT=right))
    assert unknown.exit_code == 4
    assert 'role "no-such-role" could not be found' in unknown.stderr


class GitHubActionsStandIn:
    """GitHub Actions' OIDC token endpoint on 127.0.0.1: ``GET ...&audience=AUD`` with the
    request token as bearer answers ``{"value": <a JWT for AUD>}`` signed by the key the
    server's ``jwt`` auth method trusts."""

    def __init__(self, bao: OpenBao, request_token: str) -> None:
        self.requests: list[dict[str, Any]] = []
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = parse_qs(urlsplit(self.path).query)
                stand_in.requests.append(
                    {"query": query, "authorization": self.headers.get("Authorization")}
                )
                if self.headers.get("Authorization") != f"bearer {request_token}":
                    self.send_response(401)
                    self.end_headers()
                    return
                audience = query.get("audience", ["https://github.com/acme"])[0]
                jwt = bao.sign_jwt({"aud": audience, "sub": SUBJECT})
                body = json.dumps({"count": len(jwt), "value": jwt}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/idtoken?api-version=2.0"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def github(openbao: OpenBao) -> Iterator[GitHubActionsStandIn]:
    stand_in = GitHubActionsStandIn(openbao, "gh-request-token")
    yield stand_in
    stand_in.close()


def test_jwt_login_with_github_actions_identity_token(tmp_path, openbao, openbao_kv, github):
    role = _role("gha")
    openbao.jwt_role(role, [_policy(openbao, openbao_kv)], audience="tokenctl", subject=SUBJECT)
    home = tmp_path / "tokenctl"
    _config(home, openbao, openbao_kv, auth="jwt", role=role, jwt_audience="tokenctl")
    env = _env(
        tmp_path,
        ACTIONS_ID_TOKEN_REQUEST_URL=github.url,
        ACTIONS_ID_TOKEN_REQUEST_TOKEN="gh-request-token",
    )
    added = tokenctl(
        "add", "acme", "--definition", "api-key", "--secret-stdin", home=home, env=env, input="p"
    )
    assert added.exit_code == 0, added.stderr
    assert github.requests[-1] == {
        "query": {"api-version": ["2.0"], "audience": ["tokenctl"]},
        "authorization": "bearer gh-request-token",
    }
    # Without store.jwt_audience GitHub's default audience is asked for: the role refuses it.
    _config(home, openbao, openbao_kv, auth="jwt", role=role)
    refused = tokenctl("list", home=home, env=env)
    assert refused.exit_code == 4, refused.stderr
    assert "invalid audience (aud) claim" in refused.stderr
    assert "audience" not in github.requests[-1]["query"]
    _no_secret_shown(refused, "gh-request-token")
    denied = tokenctl(
        "list", home=home, env={**env, "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "wrong-request-token"}
    )
    assert denied.exit_code == 4
    assert "GitHub Actions' identity token endpoint" in denied.stderr
    assert "answered HTTP 401" in denied.stderr and "id-token: write" in denied.stderr
    _no_secret_shown(denied, "wrong-request-token")


# -- store use -----------------------------------------------------------------------------


def test_store_use_with_approle_and_jwt_writes_the_login(tmp_path, openbao, openbao_kv):
    policy = _policy(openbao, openbao_kv)
    name = _role("use")
    role_id, secret_id = openbao.approle_role(name, [policy])
    home = tmp_path / "tokenctl"
    home.mkdir()
    (home / "config.toml").write_text('unit = "cron-host"\n', encoding="utf-8")
    place = ("--address", openbao.address, "--mount", openbao_kv, "--path", "team-a")
    env = _env(tmp_path)
    wrong = tokenctl(
        "store", "use", "openbao", *place, "--auth", "approle", "--role", role_id,
        "--secret-id-stdin", home=home, env=env, input="not-the-secret-id\n",
    )  # fmt: skip
    assert wrong.exit_code == 4, wrong.stderr
    assert "refused the AppRole login" in wrong.stderr
    assert (home / "config.toml").read_text(encoding="utf-8") == 'unit = "cron-host"\n'
    no_secret = tokenctl(
        "store", "use", "openbao", *place, "--auth", "approle", "--role", role_id,
        home=home, env=env,
    )  # fmt: skip
    assert no_secret.exit_code == 2, no_secret.stderr
    assert "--secret-id-stdin, or set TOKENCTL_APPROLE_SECRET_ID" in no_secret.stderr
    used = tokenctl(
        "store", "use", "openbao", *place, "--auth", "approle", "--role", role_id,
        "--secret-id-stdin", home=home, env=env, input=secret_id + "\n",
    )  # fmt: skip
    assert used.exit_code == 0, used.stderr
    _no_secret_shown(used, secret_id)
    written = (home / "config.toml").read_text(encoding="utf-8")
    assert secret_id not in written
    assert tomllib.loads(written) == {
        "unit": "cron-host",
        "store": {
            "kind": "openbao",
            "address": openbao.address,
            "mount": openbao_kv,
            "path": "team-a",
            "auth": "approle",
            "role": role_id,
            "auth_mount": "approle",
        },
    }
    # Every later command reads the secret id from the environment.
    again = openbao.approle_secret_id(name)
    listed = tokenctl("list", home=home, env=_env(tmp_path, TOKENCTL_APPROLE_SECRET_ID=again))
    assert listed.exit_code == 0, listed.stderr
    # Then the JWT login: the role's audience, the identity token from the environment.
    jwt_role = _role("use-ci")
    openbao.jwt_role(jwt_role, [policy], audience="tokenctl", subject=SUBJECT)
    jwt = openbao.sign_jwt({"aud": "tokenctl", "sub": SUBJECT})
    with_jwt = tokenctl(
        "store", "use", "openbao", *place, "--auth", "jwt", "--role", jwt_role,
        "--jwt-audience", "tokenctl", home=home, env=_env(tmp_path, TOKENCTL_STORE_JWT=jwt),
    )  # fmt: skip
    assert with_jwt.exit_code == 0, with_jwt.stderr
    store = tomllib.loads((home / "config.toml").read_text(encoding="utf-8"))["store"]
    assert {k: store[k] for k in ("auth", "role", "auth_mount", "jwt_audience")} == {
        "auth": "jwt",
        "role": jwt_role,
        "auth_mount": "jwt",
        "jwt_audience": "tokenctl",
    }
    mixed = tokenctl(
        "store", "use", "openbao", *place, "--auth", "token", "--role", "r", home=home, env=env
    )
    assert mixed.exit_code == 2 and "--role and --auth-mount belong to" in mixed.stderr
    # Back to a store token: the login's settings go.
    back = tokenctl(
        "store", "use", "openbao", *place, "--auth", "token", home=home,
        env={**env, "BAO_TOKEN": openbao.root_token},
    )  # fmt: skip
    assert back.exit_code == 0, back.stderr
    store = tomllib.loads((home / "config.toml").read_text(encoding="utf-8"))["store"]
    assert not {"auth", "role", "auth_mount", "jwt_audience"} & set(store)


# -- the store token's renewal during long runs -------------------------------------------


def _run_for(inventory: OpenBaoInventory, seconds: float) -> None:
    """Read the inventory every 0.2 s for ``seconds``: a run that outlasts the token."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert inventory.tokens() == []
        time.sleep(0.2)


def test_a_short_store_token_is_renewed_during_a_long_run(openbao, openbao_kv):
    policy = _policy(openbao, openbao_kv)
    token = openbao.create_token([policy], ttl="3s")
    inventory = OpenBaoInventory(openbao.address, token, openbao_kv, "acme")
    try:
        _run_for(inventory, 5)
        assert inventory.kv.keeper.renewals >= 1
        assert inventory.kv.keeper.logins == 0  # a given token: renewed, never replaced
    finally:
        inventory.close()
    # Alive 5 s after it was made with 3 s: an expired token's lookup is refused (403).
    left = openbao.client(token).auth.token.lookup_self()["data"]["ttl"]
    assert left >= 0


def test_an_approle_token_is_renewed_then_replaced_by_a_new_login(openbao, openbao_kv):
    role_id, secret_id = openbao.approle_role(
        _role("short"), [_policy(openbao, openbao_kv)], token_ttl="2s", token_max_ttl="3s"
    )
    login = AppRoleLogin(role_id, secret_id)
    inventory = OpenBaoInventory(openbao.address, login, openbao_kv, "acme")
    try:
        _run_for(inventory, 6)
        keeper = inventory.kv.keeper
        assert keeper.renewals >= 1  # renewed while the max TTL allowed
        assert keeper.logins >= 2  # then logged in again, the run never failing
    finally:
        inventory.close()


def test_a_revoked_login_token_is_replaced_by_a_new_login(openbao, openbao_kv):
    role = _role("revoked")
    openbao.jwt_role(role, [_policy(openbao, openbao_kv)], audience="tokenctl", subject=SUBJECT)
    jwt = openbao.sign_jwt({"aud": "tokenctl", "sub": SUBJECT})
    inventory = OpenBaoInventory(openbao.address, JwtLogin(role, lambda: jwt), openbao_kv, "acme")
    try:
        assert inventory.tokens() == []
        openbao.client().auth.token.revoke(inventory.kv._client.token)
        assert inventory.tokens() == []  # refused, logged in again, asked again
        assert inventory.kv.keeper.logins == 2
    finally:
        inventory.close()


def test_renew_all_outlasting_the_store_token_renews_every_token(tmp_path, openbao, openbao_kv):
    role_id, secret_id = openbao.approle_role(
        _role("renew-all"), [_policy(openbao, openbao_kv)], token_ttl="2s", token_max_ttl="30s"
    )
    home = tmp_path / "tokenctl"
    _config(home, openbao, openbao_kv, auth="approle", role=role_id)
    cli = Cli(home=home, environ={"TOKENCTL_APPROLE_SECRET_ID": secret_id})
    provider = MockProvider()
    write_books(cli, TOKEN_URL, "https://books.example/authorize", call_deadline="30s")
    cli.transport = provider.transport
    for name in ("acme", "beta", "gamma"):
        add_books_token(cli, name)
    provider.slow = 1.5  # with one refresh at a time: a run of 4.5 s, the token lasts 2 s
    started = time.monotonic()
    result = cli("renew", "--all", "--concurrency", "1", "--json")
    assert time.monotonic() - started > 4
    assert result.exit_code == 0, result.stderr
    assert [item["outcome"] for item in result.json()["renewals"]] == ["refreshed"] * 3
    assert secret_id not in result.stdout + result.stderr


def test_a_given_store_token_that_expires_is_named(openbao, openbao_kv):
    token = openbao.create_token([_policy(openbao, openbao_kv)], ttl="2s", renewable=False)
    inventory = OpenBaoInventory(openbao.address, token, openbao_kv, "acme")
    try:
        assert inventory.tokens() == []
        time.sleep(2.5)
        with pytest.raises(SecretStoreError) as expired:
            inventory.tokens()
        assert "does not accept the store token: it has expired" in expired.value.message
        assert expired.value.exit_code is ExitCode.SECRET_STORE
    finally:
        inventory.close()


def test_the_login_token_is_revoked_when_the_command_ends(openbao, openbao_kv):
    role_id, secret_id = openbao.approle_role(_role("end"), [_policy(openbao, openbao_kv)])
    inventory = OpenBaoInventory(
        openbao.address, AppRoleLogin(role_id, secret_id), openbao_kv, "acme"
    )
    assert inventory.tokens() == []
    token = inventory.kv._client.token
    assert openbao.client(token).auth.token.lookup_self()["data"]["display_name"] == "approle"
    inventory.close()
    with pytest.raises(hvac.exceptions.Forbidden):
        openbao.client(token).auth.token.lookup_self()
    given = openbao.create_token([_policy(openbao, openbao_kv)], ttl="1h")
    OpenBaoInventory(openbao.address, given, openbao_kv, "acme").close()
    assert openbao.client(given).auth.token.lookup_self()["data"]["ttl"] > 0  # the owner's


def test_store_use_asks_for_the_secret_id_on_a_terminal_only(tmp_path, openbao, openbao_kv):
    role_id, secret_id = openbao.approle_role(_role("prompt"), [_policy(openbao, openbao_kv)])
    cli = Cli(home=tmp_path / "tokenctl")
    args = ("store", "use", "openbao", "--address", openbao.address, "--mount", openbao_kv)
    login = ("--auth", "approle", "--role", role_id)
    asked = cli(*args, *login, tty=True, hidden_answer=secret_id)
    assert asked.exit_code == 0, asked.stderr
    assert secret_id not in asked.stdout + asked.stderr
    store = tomllib.loads((cli.home / "config.toml").read_text(encoding="utf-8"))["store"]
    assert (store["auth"], store["role"]) == ("approle", role_id)
    # The login is kept when --auth is not given again: only the path changes.
    cli.environ["TOKENCTL_APPROLE_SECRET_ID"] = secret_id
    moved = cli(*args, "--path", "team-b")
    assert moved.exit_code == 0, moved.stderr
    store = tomllib.loads((cli.home / "config.toml").read_text(encoding="utf-8"))["store"]
    assert (store["auth"], store["role"], store["path"]) == ("approle", role_id, "team-b")
    local = cli("store", "use", "local", "--secret-id-stdin")
    assert local.exit_code == 2 and "choose a team store" in local.stderr
    del cli.environ["TOKENCTL_APPROLE_SECRET_ID"]
    piped = cli(*args, *login)  # no terminal, no variable: the flag is named
    assert piped.exit_code == 2, piped.stderr
    assert "pipe it in with --secret-id-stdin, or set TOKENCTL_APPROLE_SECRET_ID" in piped.stderr
    no_role = cli(*args, "--auth", "jwt")
    assert no_role.exit_code == 2 and "--auth jwt needs --role" in no_role.stderr
