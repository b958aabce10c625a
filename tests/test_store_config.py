"""`[store]` in config.toml and the bao/vault environment conventions (no server needed)."""

from __future__ import annotations

import pytest

from tokenctl.config import (
    DEFAULT_MOUNT,
    DEFAULT_PATH,
    StoreAuth,
    StoreConfig,
    StoreKind,
    load_config,
)
from tokenctl.errors import ConfigError, SecretStoreError
from tokenctl.store.connection import (
    connection,
    store_address,
    store_login,
    store_token,
    store_verify,
)
from tokenctl.store.openbao.auth import (
    GITHUB_TOKEN_VARIABLE,
    GITHUB_URL_VARIABLE,
    JWT_FILE_VARIABLE,
    JWT_VARIABLE,
    SECRET_ID_FILE_VARIABLE,
    SECRET_ID_VARIABLE,
    AppRoleLogin,
    JwtLogin,
    github_identity_token,
)


def _load(tmp_path, text):  # type: ignore[no-untyped-def]
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path)


def test_no_store_table_is_the_local_store(tmp_path):
    assert _load(tmp_path, 'unit = "x"\n').store == StoreConfig()
    assert StoreConfig().kind is StoreKind.LOCAL


def test_the_team_store_table_is_read(tmp_path):
    store = _load(
        tmp_path,
        '[store]\nkind = "openbao"\naddress = "https://bao.example.com:8200"\n'
        'mount = "kv"\npath = "acme"\nnamespace = "team"\n',
    ).store
    assert store == StoreConfig(
        kind=StoreKind.OPENBAO,
        address="https://bao.example.com:8200",
        mount="kv",
        path="acme",
        namespace="team",
    )
    defaults = _load(tmp_path, '[store]\nkind = "openbao"\n').store
    assert (defaults.mount, defaults.path, defaults.address) == (DEFAULT_MOUNT, DEFAULT_PATH, None)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[store]\nkind = "s3"\n', "setting 'store.kind' is 's3'"),
        ('[store]\nauth = "approle"\n', "store.auth = 'approle' needs store.role (the AppRole"),
        ('[store]\nauth = "jwt"\n', "store.auth = 'jwt' needs store.role (the JWT role's name)"),
        ('[store]\nauth = "ldap"\n', "setting 'store.auth' is 'ldap'"),
        ('[store]\nrole = "ci"\n', "'store.role' belongs to the approle and jwt logins"),
        ('[store]\nauth_mount = "ci"\n', "'store.auth_mount' belongs to the approle and jwt"),
        (
            '[store]\nauth = "approle"\nrole = "r"\njwt_audience = "a"\n',
            "'store.jwt_audience' belongs to the jwt login",
        ),
        ('[store]\ncolour = "red"\n', "unknown setting 'store.colour'"),
        ("[store]\nmount = 3\n", "'store.mount' must be a non-empty string"),
        ('store = "openbao"\n', "'store' must be a table"),
    ],
)
def test_bad_store_settings_are_named(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _load(tmp_path, text)


def test_address_from_config_else_bao_addr_else_vault_addr():
    team = StoreConfig(kind=StoreKind.OPENBAO)
    env = {"BAO_ADDR": "https://bao.example.com/", "VAULT_ADDR": "https://vault.example.com"}
    assert store_address(team, env) == "https://bao.example.com"
    assert store_address(team, {"VAULT_ADDR": "https://vault.example.com"}) == (
        "https://vault.example.com"
    )
    named = StoreConfig(kind=StoreKind.OPENBAO, address="https://named.example.com")
    assert store_address(named, env) == "https://named.example.com"
    with pytest.raises(ConfigError, match="names no address"):
        store_address(team, {})


@pytest.mark.parametrize(
    "address", ["http://127.0.0.1:8200", "http://localhost:8200", "http://[::1]:8200"]
)
def test_plain_http_only_on_loopback(address):
    assert store_address(StoreConfig(kind=StoreKind.OPENBAO, address=address), {}) == address


@pytest.mark.parametrize("address", ["http://bao.example.com:8200", "http://10.0.0.5", "bao:8200"])
def test_plain_http_elsewhere_and_non_urls_are_refused(address):
    with pytest.raises(ConfigError):
        store_address(StoreConfig(kind=StoreKind.OPENBAO, address=address), {})


def test_token_from_variables_then_the_token_helper_file(tmp_path):
    assert store_token({"BAO_TOKEN": "b", "VAULT_TOKEN": "v"}, tmp_path) == "b"
    assert store_token({"VAULT_TOKEN": "v"}, tmp_path) == "v"
    with pytest.raises(SecretStoreError, match="no store token"):
        store_token({}, tmp_path)
    (tmp_path / ".vault-token").write_text("s.helper\n", encoding="utf-8")
    assert store_token({}, tmp_path) == "s.helper"
    assert store_token({"HOME": str(tmp_path)}) == "s.helper"


def test_tls_verification_is_the_ca_file_or_the_system_never_off(tmp_path):
    assert store_verify({"BAO_SKIP_VERIFY": "1", "VAULT_SKIP_VERIFY": "true"}) is True
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n", encoding="utf-8")
    assert store_verify({"VAULT_CACERT": str(ca)}) == str(ca)
    with pytest.raises(ConfigError, match="is not a file"):
        store_verify({"BAO_CACERT": str(tmp_path / "missing.pem")})


def test_namespace_from_config_else_the_environment():
    env = {"BAO_ADDR": "https://bao.example.com", "BAO_TOKEN": "t", "VAULT_NAMESPACE": "env"}
    team = StoreConfig(kind=StoreKind.OPENBAO)
    assert connection(team, env).namespace == "env"
    named = StoreConfig(kind=StoreKind.OPENBAO, namespace="cfg")
    found = connection(named, env)
    assert found.namespace == "cfg"
    assert "token=" not in repr(found)  # the store token is never shown


def test_the_login_settings_are_read(tmp_path):
    approle = _load(
        tmp_path, '[store]\nkind = "openbao"\nauth = "approle"\nrole = "r-1"\nauth_mount = "cron"\n'
    ).store
    assert (approle.auth, approle.role, approle.login_mount) == (StoreAuth.APPROLE, "r-1", "cron")
    jwt = _load(
        tmp_path, '[store]\nkind = "openbao"\nauth = "jwt"\nrole = "ci"\njwt_audience = "bao"\n'
    ).store
    assert (jwt.login_mount, jwt.jwt_audience) == ("jwt", "bao")


def test_the_approle_secret_id_from_the_variable_or_its_file(tmp_path):
    store = StoreConfig(kind=StoreKind.OPENBAO, auth=StoreAuth.APPROLE, role="r-1")
    login = store_login(store, {SECRET_ID_VARIABLE: " s3cret\n"})
    assert isinstance(login, AppRoleLogin)
    assert (login.role_id, login.secret_id, login.mount) == ("r-1", "s3cret", "approle")
    assert "s3cret" not in repr(login)
    (tmp_path / "secret-id").write_text("from-file\n", encoding="utf-8")
    from_file = store_login(store, {SECRET_ID_FILE_VARIABLE: str(tmp_path / "secret-id")})
    assert isinstance(from_file, AppRoleLogin) and from_file.secret_id == "from-file"
    given = store_login(store, {SECRET_ID_VARIABLE: "env"}, secret_id="piped")
    assert isinstance(given, AppRoleLogin) and given.secret_id == "piped"
    with pytest.raises(SecretStoreError, match="no secret id for the AppRole login") as missing:
        store_login(store, {"BAO_TOKEN": "ignored"})
    assert SECRET_ID_VARIABLE in (missing.value.hint or "")
    with pytest.raises(SecretStoreError, match="cannot be read"):
        store_login(store, {SECRET_ID_FILE_VARIABLE: str(tmp_path / "none")})


def test_the_jwt_from_the_variable_its_file_or_github_actions(tmp_path):
    store = StoreConfig(kind=StoreKind.OPENBAO, auth=StoreAuth.JWT, role="ci", auth_mount="gh/")
    login = store_login(store, {JWT_VARIABLE: "eyJ.a.b"})
    assert isinstance(login, JwtLogin)
    assert (login.role, login.mount, login.identity_token()) == ("ci", "gh", "eyJ.a.b")
    assert "eyJ" not in repr(login)
    jwt_file = tmp_path / "jwt"
    jwt_file.write_text("first\n", encoding="utf-8")
    from_file = store_login(store, {JWT_FILE_VARIABLE: str(jwt_file)})
    assert isinstance(from_file, JwtLogin)
    assert from_file.identity_token() == "first"
    jwt_file.write_text("second\n", encoding="utf-8")  # read anew at each login
    assert from_file.identity_token() == "second"
    github = store_login(
        store,
        {GITHUB_URL_VARIABLE: "https://gh.example/token?x=1", GITHUB_TOKEN_VARIABLE: "req"},
    )
    assert isinstance(github, JwtLogin) and github.source == "GitHub Actions"
    with pytest.raises(SecretStoreError, match="no identity token for the JWT login") as missing:
        store_login(store, {GITHUB_URL_VARIABLE: "https://gh.example/token"})
    assert "id-token: write" in (missing.value.hint or "")


def test_github_actions_identity_token_is_asked_for_the_audience():
    import httpx2

    seen: list[httpx2.Request] = []

    def answer(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        if request.headers["Authorization"] != "bearer req-token":
            return httpx2.Response(403)
        return httpx2.Response(200, json={"count": 1, "value": "eyJ.jwt.sig"})

    mock = httpx2.MockTransport(answer)
    url = "https://pipelines.example/idtoken?api-version=2.0"
    assert github_identity_token(url, "req-token", "tokenctl", mock) == "eyJ.jwt.sig"
    assert seen[-1].url.params["audience"] == "tokenctl"
    assert seen[-1].url.params["api-version"] == "2.0"
    assert github_identity_token(url, "req-token", None, mock) == "eyJ.jwt.sig"
    assert "audience" not in seen[-1].url.params  # GitHub's default audience
    with pytest.raises(SecretStoreError, match="answered HTTP 403") as refused:
        github_identity_token(url, "wrong", "tokenctl", mock)
    assert "id-token: write" in (refused.value.hint or "")
    assert "wrong" not in str(refused.value)
    with pytest.raises(SecretStoreError, match="not an https URL"):
        github_identity_token("http://pipelines.example/idtoken", "req-token", None, mock)
    empty = httpx2.MockTransport(lambda request: httpx2.Response(200, json={"value": ""}))
    with pytest.raises(SecretStoreError, match="did not answer with an identity token"):
        github_identity_token(url, "req-token", None, empty)


def test_a_server_error_while_renewing_the_store_token_is_tried_again_later():
    """An election's 500 during renewal is the server's trouble: the token stays renewable
    and the next call renews it; it is not given up for the rest of the run."""
    from types import SimpleNamespace

    from hvac import exceptions as vault

    from tokenctl.store.openbao.auth import TokenKeeper, TokenLogin

    now = [0.0]
    answers: list[object] = [
        {"data": {"ttl": 30, "renewable": True, "creation_ttl": 30}},  # the look-up
        vault.InternalServerError("local node not active but active cluster node not found"),
        {"auth": {"lease_duration": 30, "renewable": True}},
    ]
    calls: list[str] = []

    def answer(name: str):
        def call() -> object:
            calls.append(name)
            found = answers.pop(0)
            if isinstance(found, Exception):
                raise found
            return found

        return call

    token_api = SimpleNamespace(lookup_self=answer("lookup"), renew_self=answer("renew"))
    client = SimpleNamespace(token="", auth=SimpleNamespace(token=token_api))
    keeper = TokenKeeper(
        TokenLogin("s.given"), client, lambda: client, lambda call: call(), "http://127.0.0.1:1",
        monotonic=lambda: now[0],
    )  # fmt: skip
    keeper.fresh()  # takes the given token
    now[0] = 5.0
    keeper.fresh()  # looks up its time left: 30 s from now
    now[0] = 30.0  # 5 s left: renew
    keeper.fresh()  # the server answers 500: tried again at the next call
    keeper.fresh()
    assert calls == ["lookup", "renew", "renew"]
    assert keeper.renewals == 1
