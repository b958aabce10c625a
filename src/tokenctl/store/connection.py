"""Where the team store is and how to reach it: ``[store]`` and the ecosystem's variables.

The conventions of the ``bao`` and ``vault`` command lines apply: the address from
config.toml, else ``BAO_ADDR`` or ``VAULT_ADDR``; the store token from ``BAO_TOKEN`` or
``VAULT_TOKEN``, else the token helper's file ``~/.vault-token``; the namespace from
config.toml, else ``BAO_NAMESPACE`` or ``VAULT_NAMESPACE``; the CA certificate that
verifies the server's from ``BAO_CACERT`` or ``VAULT_CACERT``. TLS verification is never
skipped (``BAO_SKIP_VERIFY`` is not read), and a plain ``http://`` address is accepted only
on the loopback interface. With ``auth = "approle"`` or ``"jwt"`` the store token comes
from a login instead (:mod:`tokenctl.store.openbao.auth`: the secret id or the job's
identity token from the environment). The store token is kept in memory only.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from tokenctl.config import StoreAuth, StoreConfig
from tokenctl.errors import ConfigError, SecretStoreError

if TYPE_CHECKING:
    from tokenctl.oauth.provider import Transport
    from tokenctl.store.openbao.auth import StoreLogin

#: The file ``bao login`` and ``vault login`` keep the token in (their token helper).
TOKEN_HELPER_FILE = ".vault-token"  # noqa: S105 - a file name


@dataclass(frozen=True)
class Connection:
    """Everything needed to open the team store."""

    address: str
    mount: str
    path: str
    namespace: str | None
    #: ``True`` (the system's CAs) or the file of the CA certificate (``BAO_CACERT``).
    verify: bool | str
    #: The store token, or the login (approle, jwt) that gets one when the store opens.
    login: StoreLogin = field(repr=False)


def first_set(environ: Mapping[str, str], *names: str) -> str | None:
    """The value of the first of ``names`` set (not blank) in ``environ``, stripped."""
    for name in names:
        value = environ.get(name, "").strip()
        if value:
            return value
    return None


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine's loopback interface."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def checked_address(address: str) -> str:
    """The team store's URL without a trailing slash; refused unless https (or loopback http)."""
    parts = urlsplit(address.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"the team store address {address!r} is not a URL",
            hint="give it as https://HOST:PORT (store.address in config.toml, or BAO_ADDR)",
        )
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ConfigError(
            f"the team store address {address!r} is plain http: the store token would cross "
            "the network unencrypted",
            hint="use https://; plain http is accepted only on 127.0.0.1 or localhost",
        )
    return address.strip().rstrip("/")


def configured_address(store: StoreConfig, environ: Mapping[str, str]) -> str | None:
    """The address config.toml names, else ``BAO_ADDR`` or ``VAULT_ADDR``; ``None``: none."""
    return store.address or first_set(environ, "BAO_ADDR", "VAULT_ADDR")


def store_address(store: StoreConfig, environ: Mapping[str, str]) -> str:
    """The address config.toml names, else the environment's; refused when there is none."""
    address = configured_address(store, environ)
    if address is None:
        raise ConfigError(
            'config.toml chooses the team store (store.kind = "openbao") but names no address',
            hint="set store.address in config.toml (`tokenctl store use openbao --address "
            "URL`), or BAO_ADDR",
        )
    return checked_address(address)


def store_token(environ: Mapping[str, str], home: Path | None = None) -> str:
    """The store token: ``BAO_TOKEN``, ``VAULT_TOKEN``, else ``~/.vault-token``."""
    token = first_set(environ, "BAO_TOKEN", "VAULT_TOKEN")
    if token is not None:
        return token
    if home is None:
        home_text = first_set(environ, "HOME", "USERPROFILE")
        home = Path(home_text) if home_text else Path.home()
    try:
        token = (home / TOKEN_HELPER_FILE).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        token = ""
    if not token:
        raise SecretStoreError(
            "no store token for the team store: BAO_TOKEN and VAULT_TOKEN are not set and "
            f"{home / TOKEN_HELPER_FILE} holds none",
            hint="log in with `bao login` (or `vault login`), or set BAO_TOKEN",
        )
    return token


def store_verify(environ: Mapping[str, str]) -> bool | str:
    """The CA certificate file that verifies the server (``BAO_CACERT``), else the system's."""
    cacert = first_set(environ, "BAO_CACERT", "VAULT_CACERT")
    if cacert is None:
        return True
    if not Path(cacert).is_file():
        raise ConfigError(
            f"the CA certificate {cacert!r} (BAO_CACERT or VAULT_CACERT) is not a file",
            hint="point BAO_CACERT at the PEM file of the CA that signed the server's certificate",
        )
    return cacert


def store_login(
    store: StoreConfig,
    environ: Mapping[str, str],
    *,
    transport: Transport | None = None,
    secret_id: str | None = None,
) -> StoreLogin:
    """How tokenctl gets its store token: the one given, or the AppRole or JWT login.

    ``secret_id`` is an AppRole secret id read from stdin (``store use``); without one,
    the environment's. ``transport`` carries the request for GitHub Actions' identity
    token (``None``: the network).
    """
    from tokenctl.store.openbao.auth import TokenLogin, approle_login, jwt_login
    from tokenctl.store.openbao.layout import normal_path

    if store.auth is StoreAuth.TOKEN:
        return TokenLogin(store_token(environ))
    if not store.role:
        raise ConfigError(
            f"the {store.auth.value} login to the team store needs a role (store.role)",
            hint=f"choose it with `tokenctl store use openbao --auth {store.auth.value} "
            "--role ROLE`",
        )
    mount = normal_path(store.login_mount, what="auth mount")
    if store.auth is StoreAuth.APPROLE:
        return approle_login(store.role, mount, environ, secret_id=secret_id)
    return jwt_login(store.role, mount, environ, audience=store.jwt_audience, transport=transport)


def connection(
    store: StoreConfig,
    environ: Mapping[str, str],
    *,
    transport: Transport | None = None,
    secret_id: str | None = None,
) -> Connection:
    """How to reach the team store config.toml chooses, with the environment applied.

    ``transport`` and ``secret_id``: see :func:`store_login`.
    """
    from tokenctl.store.openbao.layout import normal_path

    return Connection(
        address=store_address(store, environ),
        mount=normal_path(store.mount, what="mount"),
        path=normal_path(store.path, what="path"),
        namespace=store.namespace or first_set(environ, "BAO_NAMESPACE", "VAULT_NAMESPACE"),
        verify=store_verify(environ),
        login=store_login(store, environ, transport=transport, secret_id=secret_id),
    )
