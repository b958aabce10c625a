"""``tokenctl store``: which store holds the inventory, what it says, and choosing one."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any, TypeVar

from tokenctl.config import StoreAuth, StoreConfig, StoreKind
from tokenctl.errors import ConfigError, SecretStoreError, UsageError

if TYPE_CHECKING:
    from tokenctl.context import AppContext


@dataclass(frozen=True)
class StoreStatus:
    """What ``store status`` reports: the facts of the store (``Inventory.store_facts``)."""

    facts: Mapping[str, Any]

    @property
    def problem(self) -> str | None:
        """Why the team store cannot serve tokens now, or ``None``."""
        if self.facts.get("kind") != StoreKind.OPENBAO.value:
            return None
        if self.facts.get("sealed"):
            return "the server is sealed: an operator unseals it (`bao operator unseal`)"
        may = self.facts.get("may") or {}
        if not may.get("read_records"):
            return "this identity may not read the inventory"
        return None


def _yes(value: object) -> str:
    return "yes" if value else "no"


def _secrets_line(may: Mapping[str, Any]) -> str:
    """``yes``; ``no``; or the definitions whose tokens' secrets it may read."""
    if may.get("read_secrets"):
        return "yes"
    some = may.get("read_secrets_of") or []
    return f"only of {', '.join(some)}" if some else "no"


def store_lines(facts: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The facts of a store as ``(label, value)`` lines (also ``doctor``'s store check)."""
    if facts.get("kind") != "openbao":
        return [("store", "local"), ("inventory", str(facts.get("path")))]
    lines = [
        ("store", "openbao"),
        ("address", str(facts.get("address"))),
        ("mount/path", f"{facts.get('mount')}/{facts.get('path')}"),
    ]
    if facts.get("namespace"):
        lines.append(("namespace", str(facts["namespace"])))
    auth = facts.get("auth") or {}
    if auth.get("method") in ("approle", "jwt"):
        what = "role id" if auth["method"] == "approle" else "role"
        lines.append(
            ("login", f"{auth['method']}, {what} {auth.get('role')} at auth/{auth.get('mount')}")
        )
    lines += [
        ("version", str(facts.get("version") or "unknown")),
        ("sealed", _yes(facts.get("sealed"))),
    ]
    identity = facts.get("identity")
    if identity:
        name = identity.get("display_name") or "unknown"
        entity = identity.get("entity_id")
        lines.append(("identity", name + (f" (entity {entity})" if entity else "")))
        lines.append(("policies", ", ".join(identity.get("policies") or []) or "none"))
    may = facts.get("may")
    if may:
        lines += [
            ("list records", _yes(may.get("list_records"))),
            ("read records", _yes(may.get("read_records"))),
            ("read secrets", _secrets_line(may)),
            ("write", _yes(may.get("write"))),
        ]
    return lines


def store_status(ctx: AppContext) -> StoreStatus:
    """The facts of the store config.toml chooses (the team store: asked of the server)."""
    return StoreStatus(ctx.inventory.store_facts())


@dataclass(frozen=True)
class StoreChoice:
    """What ``store use`` wrote: the store now chosen and its facts."""

    config_file: str
    facts: Mapping[str, Any]


_Choice = TypeVar("_Choice", bound=StrEnum)


def parse_choice(kind: type[_Choice], text: str, *, what: str, hint: str) -> _Choice:
    """``text`` as one of ``kind``'s values (any case, spaces around ignored).

    Anything else is a usage error: "unknown WHAT 'TEXT'", with ``hint``.
    """
    try:
        return kind(text.strip().lower())
    except ValueError:
        raise UsageError(f"unknown {what} {text!r}", hint=hint) from None


def parse_store_kind(text: str) -> StoreKind:
    """``local`` or ``openbao``; anything else is a usage error naming both."""
    return parse_choice(
        StoreKind, text, what="store", hint="use `tokenctl store use local` or `... use openbao`"
    )


@dataclass(frozen=True)
class LoginChoice:
    """How ``store use openbao`` is asked to log in: ``--auth`` and the options with it.

    ``None`` is an option not given: for ``auth``, the login config.toml names is kept
    (with its role, auth mount and audience, each replaced by the option given).
    """

    auth: StoreAuth | None = None
    role: str | None = None
    auth_mount: str | None = None
    jwt_audience: str | None = None
    #: Read the AppRole secret id from stdin (``--secret-id-stdin``).
    secret_id_from_stdin: bool = False

    @property
    def given(self) -> bool:
        """Whether any option of the login was given."""
        return (
            self.auth is not None
            or self.role is not None
            or self.auth_mount is not None
            or self.jwt_audience is not None
            or self.secret_id_from_stdin
        )


def parse_store_auth(text: str | None) -> StoreAuth | None:
    """``token``, ``approle`` or ``jwt`` (``None`` stays ``None``); else a usage error."""
    if text is None:
        return None
    choices = ", ".join(a.value for a in StoreAuth)
    return parse_choice(StoreAuth, text, what="login", hint=f"use --auth with one of: {choices}")


def _address_option(address: str | None) -> str | None:
    """``--address`` checked as config.toml's is, refused as the usage error it is here."""
    from tokenctl.store.connection import checked_address

    if address is None:
        return None
    try:
        return checked_address(address)
    except ConfigError as error:
        raise UsageError(f"--address: {error.message}", hint=error.hint) from None


def use_store(
    ctx: AppContext,
    kind: StoreKind,
    *,
    address: str | None = None,
    mount: str | None = None,
    path: str | None = None,
    login: LoginChoice | None = None,
) -> StoreChoice:
    """Choose the store in config.toml, other settings kept.

    The team store is written only after the server answered, is unsealed, the login
    (``login``, else the one config.toml names) gave a store token, and that token may
    read the inventory at ``mount``/``path``; otherwise a :class:`SecretStoreError`
    (exit 4) says what is wrong and nothing is written. No secret is written: the
    AppRole secret id and the job's identity token come from the environment at every
    command.
    """
    from tokenctl.config import DEFAULT_MOUNT, DEFAULT_PATH, read_toml
    from tokenctl.store.connection import connection

    login = login or LoginChoice()
    current = ctx.config.store  # a broken config.toml is reported, never overwritten
    config_file = ctx.paths.config_file
    document = read_toml(config_file)
    table: dict[str, Any] = dict(document.get("store") or {})  # type: ignore[call-overload]
    if kind is StoreKind.LOCAL:
        if address is not None or mount is not None or path is not None or login.given:
            raise UsageError(
                "--address, --mount, --path and the login options (--auth, --role, "
                "--auth-mount, --jwt-audience, --secret-id-stdin) choose a team store",
                hint="leave them out for `tokenctl store use local`",
            )
        table["kind"] = StoreKind.LOCAL.value
        facts: Mapping[str, Any] = {
            "kind": StoreKind.LOCAL.value,
            "path": str(ctx.paths.inventory_file),
        }
    else:
        chosen = _chosen_login(current, login)
        chosen = replace(
            chosen,
            kind=kind,
            address=_address_option(address),
            # An empty --mount or --path is refused as a path, never taken as the default.
            mount=DEFAULT_MOUNT if mount is None else mount,
            path=DEFAULT_PATH if path is None else path,
            namespace=table.get("namespace"),  # kept in config.toml: checked with it too
        )
        secret_id = _secret_id(ctx, login) if chosen.auth is StoreAuth.APPROLE else None
        found = connection(chosen, ctx.environ, transport=ctx.http_transport, secret_id=secret_id)
        facts = _checked_team_store(ctx, chosen, found)
        table.update(kind=kind.value, address=found.address, mount=found.mount, path=found.path)
        for key in ("auth", "role", "auth_mount", "jwt_audience"):
            table.pop(key, None)
        if chosen.auth is not StoreAuth.TOKEN:
            table.update(auth=chosen.auth.value, role=chosen.role, auth_mount=_login_mount(chosen))
            if chosen.jwt_audience is not None:
                table["jwt_audience"] = chosen.jwt_audience
    document["store"] = table
    _write_config(ctx, document)
    return StoreChoice(str(config_file), facts)


def _chosen_login(current: StoreConfig, login: LoginChoice) -> StoreConfig:
    """The login ``store use`` checks and writes: the options given over config.toml's.

    A new ``--auth`` starts afresh: config.toml's role and mount belong to its old login.
    """
    auth = login.auth or current.auth
    kept = current if auth is current.auth else StoreConfig()
    role = login.role if login.role is not None else kept.role
    auth_mount = login.auth_mount if login.auth_mount is not None else kept.auth_mount
    audience = login.jwt_audience if login.jwt_audience is not None else kept.jwt_audience
    if auth is StoreAuth.TOKEN:
        if login.role is not None or login.auth_mount is not None:
            raise UsageError(
                "--role and --auth-mount belong to the approle and jwt logins",
                hint="add --auth approle or --auth jwt, or leave them out",
            )
        role = auth_mount = None
    elif not role:
        what = "the AppRole role id" if auth is StoreAuth.APPROLE else "the JWT role's name"
        raise UsageError(
            f"--auth {auth.value} needs --role ({what})",
            hint=f"add --role ROLE to `tokenctl store use openbao --auth {auth.value}`",
        )
    if auth is not StoreAuth.JWT:
        if login.jwt_audience is not None:
            raise UsageError(
                "--jwt-audience belongs to the jwt login", hint="add --auth jwt, or leave it out"
            )
        audience = None
    if login.secret_id_from_stdin and auth is not StoreAuth.APPROLE:
        raise UsageError(
            "--secret-id-stdin belongs to the approle login",
            hint="add --auth approle, or leave it out",
        )
    return StoreConfig(auth=auth, role=role, auth_mount=auth_mount, jwt_audience=audience)


def _login_mount(store: StoreConfig) -> str:
    from tokenctl.store.openbao.layout import normal_path

    return normal_path(store.login_mount, what="auth mount")


def _secret_id(ctx: AppContext, login: LoginChoice) -> str | None:
    """The AppRole secret id ``store use`` checks the login with.

    From stdin with ``--secret-id-stdin``; else ``None`` (the environment's) when
    ``TOKENCTL_APPROLE_SECRET_ID`` or its file is set; else asked at a hidden prompt.
    """
    from tokenctl.store.openbao.auth import SECRET_ID_FILE_VARIABLE, SECRET_ID_VARIABLE

    if not login.secret_id_from_stdin and any(
        ctx.environ.get(name, "").strip() for name in (SECRET_ID_VARIABLE, SECRET_ID_FILE_VARIABLE)
    ):
        return None
    return ctx.io.read_secret(
        "AppRole secret id",
        from_stdin=login.secret_id_from_stdin,
        flag=f"--secret-id-stdin, or set {SECRET_ID_VARIABLE}",
        required=True,
    )


def _checked_team_store(ctx: AppContext, chosen: StoreConfig, found: Any) -> Mapping[str, Any]:
    """The facts of the team store ``found`` names, refused unless it can serve the inventory."""
    from tokenctl.store.openbao import connected_inventory_factory

    inventory = connected_inventory_factory(found)(ctx.paths, lambda: ctx.keyring)
    try:
        facts = inventory.store_facts()
        status = StoreStatus(facts)
        if status.problem is not None:
            raise SecretStoreError(
                f"the team store {found.address} cannot hold the inventory at "
                f"{found.mount}/{found.path}: {status.problem}",
                hint="ask the team store's administrator for a policy that grants reading it "
                "(docs/team.md), or check --mount and --path; config.toml was not changed",
            )
        inventory.tokens()  # the mount is KV version 2, and the records can be read
    finally:
        inventory.close()
    return facts


def _write_config(ctx: AppContext, document: dict[str, Any]) -> None:
    """Replace config.toml with ``document`` (readers see the old or the new file)."""
    import tomli_w

    from tokenctl.fsutil import write_private_atomic

    write_private_atomic(ctx.paths.config_file, tomli_w.dumps(document).encode("utf-8"))
