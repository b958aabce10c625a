"""``config.toml``: the few settings a user may change by hand."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from pathlib import Path

from tokenctl.errors import ConfigError, UsageError
from tokenctl.timeutil import parse_duration

DEFAULT_EXPIRING_WINDOW = timedelta(days=7)
KNOWN_KEYS = {"unit", "expiring_window", "metrics_account_label", "store", "webhooks"}
#: Settings of each ``[[webhooks]]`` entry.
WEBHOOK_KEYS = {"url", "signed"}
#: Settings of the ``[store]`` table.
STORE_KEYS = {
    "kind",
    "address",
    "mount",
    "path",
    "auth",
    "namespace",
    "role",
    "auth_mount",
    "jwt_audience",
}
#: The team store's KV version 2 mount when ``[store]`` names none.
DEFAULT_MOUNT = "tokenctl"
#: The team inventory's path in the mount when `[store]` names none.
DEFAULT_PATH = "inventory"


class StoreKind(StrEnum):
    """Where the inventory lives: this machine's SQLite file, or a team's OpenBao."""

    LOCAL = "local"
    OPENBAO = "openbao"


class StoreAuth(StrEnum):
    """How tokenctl logs in to the team store."""

    TOKEN = "token"  # noqa: S105 - a login method, not a password
    APPROLE = "approle"
    JWT = "jwt"


@dataclass(frozen=True)
class StoreConfig:
    """The ``[store]`` table: which store, and for the team store where it is.

    ``address`` and ``namespace`` are ``None`` when config.toml names none (the
    environment's ``BAO_ADDR``/``VAULT_ADDR``, ``BAO_NAMESPACE``/``VAULT_NAMESPACE`` then
    apply, see :mod:`tokenctl.store.connection`).
    """

    kind: StoreKind = StoreKind.LOCAL
    address: str | None = None
    mount: str = DEFAULT_MOUNT
    path: str = DEFAULT_PATH
    auth: StoreAuth = StoreAuth.TOKEN
    namespace: str | None = None
    #: The AppRole role id, or the JWT role's name (``None`` for ``auth = "token"``).
    role: str | None = None
    #: Where the auth method is mounted; ``None``: where it is by default (its name).
    auth_mount: str | None = None
    #: The audience tokenctl asks GitHub Actions for in the job's identity token;
    #: ``None``: GitHub's default audience (the URL of the repository's owner).
    jwt_audience: str | None = None

    @property
    def login_mount(self) -> str:
        """Where the auth method of ``auth`` is mounted (``approle``, ``jwt`` by default)."""
        return self.auth_mount or self.auth.value


@dataclass(frozen=True)
class Webhook:
    """One ``[[webhooks]]`` entry: where ``check`` and ``renew --all`` send notices.

    ``signed``: a signing secret was stored for it (in the secret store, never here).
    """

    url: str
    signed: bool = False


@dataclass(frozen=True)
class Config:
    """Settings from ``config.toml``; every field has a default."""

    unit: str | None = None
    expiring_window: timedelta = DEFAULT_EXPIRING_WINDOW
    store: StoreConfig = field(default_factory=StoreConfig)
    #: Whether ``check --format openmetrics`` labels each token with its account (an
    #: e-mail, often): off by default, because metrics leave the machine.
    metrics_account_label: bool = False
    webhooks: tuple[Webhook, ...] = ()


def read_toml(path: Path) -> dict[str, object]:
    """Read a hand-edited TOML file; a missing one is empty.

    Whatever is wrong with the file (bad syntax, not UTF-8, binary, nested too deep for
    the parser, unreadable) is a :class:`ConfigError` that names it.
    """
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as error:
        problem = f"invalid TOML: {error}"
    except UnicodeDecodeError as error:
        problem = f"not UTF-8 text (byte {error.start}); is it a binary file?"
    except RecursionError:
        problem = "nested too deeply to read"
    except OSError as error:
        problem = f"cannot be read: {error.strerror or error}"
    raise ConfigError(
        f"{path}: {problem}", hint=f"fix {path.name} (UTF-8 TOML), or move it away"
    ) from None


def load_config(path: Path) -> Config:
    """Load and validate ``config.toml``; a missing file gives the defaults."""
    raw = read_toml(path)
    unknown = sorted(set(raw) - KNOWN_KEYS)
    if unknown:
        raise ConfigError(
            f"{path}: unknown setting {unknown[0]!r}",
            hint=f"known settings: {', '.join(sorted(KNOWN_KEYS))}",
        )
    unit = raw.get("unit")
    if unit is not None and (not isinstance(unit, str) or not unit.strip()):
        raise ConfigError(f"{path}: setting 'unit' must be a non-empty string")
    window_text = raw.get("expiring_window")
    window = DEFAULT_EXPIRING_WINDOW
    if window_text is not None:
        if not isinstance(window_text, str):
            raise ConfigError(f"{path}: setting 'expiring_window' must be a duration like \"7d\"")
        try:
            window = parse_duration(window_text)
        except UsageError as error:
            raise ConfigError(f"{path}: setting 'expiring_window': {error}") from None
    account_label = raw.get("metrics_account_label", False)
    if not isinstance(account_label, bool):
        raise ConfigError(
            f"{path}: setting 'metrics_account_label' must be true or false",
            hint="write metrics_account_label = true (no quotes), or remove the line",
        )
    return Config(
        unit=unit,
        expiring_window=window,
        store=_store_config(path, raw.get("store")),
        metrics_account_label=account_label,
        webhooks=_webhooks(path, raw.get("webhooks")),
    )


def webhook_url_problem(url: str) -> str | None:
    """Why ``url`` may not receive notices; ``None`` when it may.

    HTTPS, or plain HTTP to this machine only (a local relay, a test receiver): a notice
    names tokens and tenants, which must not cross a network unencrypted.
    """
    import ipaddress
    from urllib.parse import urlsplit

    if any(
        character.isspace() or ord(character) < 32 or ord(character) == 127 for character in url
    ):
        # urlsplit drops tabs and newlines silently; the HTTP client would refuse them.
        return "it holds spaces or control characters"
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - a port that is not a number raises here
    except ValueError:
        return "it is not a URL"
    if parts.scheme not in ("https", "http") or not host:
        return "it is not an https:// (or http:// to this machine) URL"
    if parts.scheme == "http":
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = host == "localhost"
        if not loopback:
            return "plain http:// is allowed only to this machine (127.0.0.1, ::1, localhost)"
    return None


def _webhooks(path: Path, raw: object) -> tuple[Webhook, ...]:
    """The ``[[webhooks]]`` entries checked; none when there are none."""
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(item, dict) for item in raw):
        raise ConfigError(f"{path}: 'webhooks' must be an array of tables ([[webhooks]])")
    found = []
    for item in raw:
        unknown = sorted(set(item) - WEBHOOK_KEYS)
        if unknown:
            raise ConfigError(
                f"{path}: unknown setting 'webhooks.{unknown[0]}'",
                hint=f"known settings of [[webhooks]]: {', '.join(sorted(WEBHOOK_KEYS))}",
            )
        url, signed = item.get("url"), item.get("signed", False)
        if not isinstance(url, str) or not isinstance(signed, bool):
            raise ConfigError(
                f"{path}: each [[webhooks]] needs url (a string) and may have signed (a boolean)"
            )
        problem = webhook_url_problem(url)
        if problem is not None:
            raise ConfigError(
                f"{path}: a webhook URL is refused: {problem}",
                hint=f"edit {path}: fix or remove that [[webhooks]] entry (tokenctl reads "
                "this file first, so `notify remove` cannot do it)",
            )
        found.append(Webhook(url, signed))
    return tuple(found)


def _store_config(path: Path, raw: object) -> StoreConfig:
    """The ``[store]`` table checked; a missing one is the local store."""
    if raw is None:
        return StoreConfig()
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: 'store' must be a table ([store])")
    unknown = sorted(set(raw) - STORE_KEYS)
    if unknown:
        raise ConfigError(
            f"{path}: unknown setting 'store.{unknown[0]}'",
            hint=f"known settings of [store]: {', '.join(sorted(STORE_KEYS))}",
        )

    def text(key: str) -> str | None:
        value = raw.get(key)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise ConfigError(f"{path}: setting 'store.{key}' must be a non-empty string")
        return None if value is None else value.strip()

    kind_text = text("kind") or StoreKind.LOCAL.value
    try:
        kind = StoreKind(kind_text)
    except ValueError:
        raise ConfigError(
            f"{path}: setting 'store.kind' is {kind_text!r}",
            hint=f"use one of: {', '.join(k.value for k in StoreKind)}",
        ) from None
    auth_text = text("auth") or StoreAuth.TOKEN.value
    try:
        auth = StoreAuth(auth_text)
    except ValueError:
        raise ConfigError(
            f"{path}: setting 'store.auth' is {auth_text!r}",
            hint=f"use one of: {', '.join(a.value for a in StoreAuth)}",
        ) from None
    role, auth_mount, audience = text("role"), text("auth_mount"), text("jwt_audience")
    _check_login_settings(path, auth, role=role, auth_mount=auth_mount, jwt_audience=audience)
    return StoreConfig(
        kind=kind,
        address=text("address"),
        mount=text("mount") or DEFAULT_MOUNT,
        path=text("path") or DEFAULT_PATH,
        auth=auth,
        namespace=text("namespace"),
        role=role,
        auth_mount=auth_mount,
        jwt_audience=audience,
    )


def _check_login_settings(
    path: Path,
    auth: StoreAuth,
    *,
    role: str | None,
    auth_mount: str | None,
    jwt_audience: str | None,
) -> None:
    """``role``, ``auth_mount`` and ``jwt_audience`` where the login ``auth`` uses them."""
    if auth is StoreAuth.TOKEN:
        for key, value in (("role", role), ("auth_mount", auth_mount)):
            if value is not None:
                raise ConfigError(
                    f"{path}: setting 'store.{key}' belongs to the approle and jwt logins, "
                    'but store.auth is "token"',
                    hint=f'remove \'store.{key}\', or set store.auth = "approle" or "jwt"',
                )
    elif role is None:
        what = "the AppRole role id" if auth is StoreAuth.APPROLE else "the JWT role's name"
        raise ConfigError(
            f"{path}: store.auth = {auth.value!r} needs store.role ({what})",
            hint="set it with `tokenctl store use openbao --auth "
            f"{auth.value} --role ROLE`, or in config.toml",
        )
    if jwt_audience is not None and auth is not StoreAuth.JWT:
        raise ConfigError(
            f"{path}: setting 'store.jwt_audience' belongs to the jwt login, but store.auth "
            f"is {auth.value!r}",
            hint="remove 'store.jwt_audience', or set store.auth = \"jwt\"",
        )
