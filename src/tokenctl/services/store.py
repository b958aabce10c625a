"""``tokenctl store``: which store holds the inventory, what it says, and choosing one."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tokenctl.config import StoreConfig, StoreKind
from tokenctl.errors import SecretStoreError, UsageError

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


def parse_store_kind(text: str) -> StoreKind:
    """``local`` or ``openbao``; anything else is a usage error naming both."""
    try:
        return StoreKind(text.strip().lower())
    except ValueError:
        raise UsageError(
            f"unknown store {text!r}", hint="use `tokenctl store use local` or `... use openbao`"
        ) from None


def use_store(
    ctx: AppContext,
    kind: StoreKind,
    *,
    address: str | None = None,
    mount: str | None = None,
    path: str | None = None,
) -> StoreChoice:
    """Choose the store in config.toml, other settings kept.

    The team store is written only after the server answered, is unsealed, and the
    store token may read the inventory at ``mount``/``path``; otherwise a
    :class:`SecretStoreError` (exit 4) says what is wrong and nothing is written.
    """
    from tokenctl.config import DEFAULT_MOUNT, DEFAULT_PATH, read_toml
    from tokenctl.store.connection import checked_address, connection

    ctx.config  # noqa: B018 - a broken config.toml is reported, never overwritten
    config_file = ctx.paths.config_file
    document = read_toml(config_file)
    table: dict[str, Any] = dict(document.get("store") or {})  # type: ignore[call-overload]
    if kind is StoreKind.LOCAL:
        if address or mount or path:
            raise UsageError(
                "--address, --mount and --path choose a team store",
                hint="leave them out for `tokenctl store use local`",
            )
        table["kind"] = StoreKind.LOCAL.value
        facts: Mapping[str, Any] = {
            "kind": StoreKind.LOCAL.value,
            "path": str(ctx.paths.inventory_file),
        }
    else:
        chosen = StoreConfig(
            kind=kind,
            address=checked_address(address) if address else None,
            mount=mount or DEFAULT_MOUNT,
            path=path or DEFAULT_PATH,
            namespace=table.get("namespace"),  # kept in config.toml: checked with it too
        )
        found = connection(chosen, ctx.environ)
        facts = _checked_team_store(ctx, chosen, found)
        table.update(kind=kind.value, address=found.address, mount=found.mount, path=found.path)
    document["store"] = table
    _write_config(ctx, document)
    return StoreChoice(str(config_file), facts)


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
