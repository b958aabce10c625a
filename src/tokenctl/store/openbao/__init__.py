"""The team store: one inventory in an OpenBao (or HashiCorp Vault) KV version 2 mount.

Importing this package imports no HTTP client: :mod:`hvac` (and ``requests`` under it)
is imported when an inventory is opened, so a command on the local store never pays
for it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tokenctl.inventory import Inventory
    from tokenctl.paths import Paths
    from tokenctl.secrets import Keyring
    from tokenctl.store.connection import Connection
    from tokenctl.store.openbao.auth import StoreLogin


def openbao_inventory_factory(
    address: str,
    token: str | StoreLogin,
    mount: str,
    prefix: str,
    *,
    namespace: str | None = None,
    verify: bool | str = True,
    timeout: float = 30.0,
) -> Callable[[Paths, Callable[[], Keyring]], Inventory]:
    """An ``AppContext.inventory_factory`` that opens the team store at ``address``.

    ``mount`` is the KV version 2 secrets engine, ``prefix`` the team's path in it,
    ``token`` the store token or the login that gets one (:mod:`.auth`). The keyring the
    context offers is never used: OpenBao keeps the secrets itself.
    """

    def open_team_store(paths: Paths, keyring: Callable[[], Keyring]) -> Inventory:
        from tokenctl.store.openbao.inventory import OpenBaoInventory

        return OpenBaoInventory(
            address, token, mount, prefix, namespace=namespace, verify=verify, timeout=timeout
        )

    return open_team_store


def connected_inventory_factory(
    found: Connection,
) -> Callable[[Paths, Callable[[], Keyring]], Inventory]:
    """:func:`openbao_inventory_factory` for a resolved store connection."""
    return openbao_inventory_factory(
        found.address,
        found.login,
        found.mount,
        found.path,
        namespace=found.namespace,
        verify=found.verify,
    )
