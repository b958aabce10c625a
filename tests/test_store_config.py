"""`[store]` in config.toml and the bao/vault environment conventions (no server needed)."""

from __future__ import annotations

import pytest

from tokenctl.config import DEFAULT_MOUNT, DEFAULT_PATH, StoreConfig, StoreKind, load_config
from tokenctl.errors import ConfigError, SecretStoreError
from tokenctl.store.connection import connection, store_address, store_token, store_verify


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
        ('[store]\nauth = "approle"\n', "'store.auth' = 'approle' is not supported yet"),
        ('[store]\nauth = "jwt"\n', "'store.auth' = 'jwt' is not supported yet"),
        ('[store]\nauth = "ldap"\n', "setting 'store.auth' is 'ldap'"),
        ('[store]\nrole = "ci"\n', "'store.role' is not supported yet"),
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
