"""Where the secret parts of tokens are kept: sealed in the inventory, keyed from the keyring.

The OS keyring holds one random data key per inventory (:mod:`tokenctl.secrets.sealing`);
every token secret and client secret is sealed with it (:mod:`tokenctl.secrets.sealing`)
and stored in the inventory itself, in the same transaction as its record. Inventories
written by tokenctl 0.x kept one keyring entry per token instead; those *legacy entries*
are moved into the inventory on first use (see ``SqliteInventory``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple, Protocol

if TYPE_CHECKING:  # the quick `token` path reads entries as text, without the model
    from tokenctl.models import TokenSecrets

#: The keyring service name every tokenctl entry is stored under.
KEYRING_SERVICE = "tokenctl"

#: How the names of tokenctl's keyring entries begin: an inventory's data key, and the
#: legacy entries of a token's secrets and of a definition's client secret (``doctor``
#: looks for orphans among the latter).
DATA_KEY_PREFIX = "inventory-"
TOKEN_REF_PREFIX = "token-"  # noqa: S105 - a name prefix, not a secret
CLIENT_REF_PREFIX = "definition-"


def data_key_ref(inventory_id: str) -> str:
    """The keyring entry that holds the data key of the inventory ``inventory_id``."""
    return f"{DATA_KEY_PREFIX}{inventory_id}"


def client_secret_ref(definition_name: str, client_id: str) -> str:
    """The legacy keyring entry of one client registration's secret (tokenctl 0.x).

    The client id was part of the name so that a definition switched to another client
    never sent the old client's secret; the sealed store keys by both the same way.
    """
    return f"{CLIENT_REF_PREFIX}{definition_name}-client-{client_id}"


def parse_entry(service: str, ref: str, stored: str | None) -> TokenSecrets | None:
    """The secrets in a legacy keyring entry as stored; ``None`` for no entry.

    An entry tokenctl did not write is an error that says how to replace it.
    """
    if stored is None:
        return None
    from tokenctl.errors import SecretUnreadableError
    from tokenctl.models import TokenSecrets

    try:
        return TokenSecrets.from_json(stored)
    except (ValueError, TypeError, RecursionError):
        raise SecretUnreadableError(
            f"the keyring entry {service}/{ref} is not a tokenctl secret",
            hint="renew the token to write its secret again",
        ) from None


class BackendReport(NamedTuple):
    """What ``doctor`` says about the OS keyring."""

    name: str
    secure: bool
    problem: str | None = None


class Keyring(Protocol):
    """The OS keyring as tokenctl uses it: text entries under the ``tokenctl`` service.

    It holds the data key of each inventory (and, until they are moved, legacy entries).
    Implementations refuse to work (raising ``SecretStoreError``) rather than keep
    anything somewhere insecure.
    """

    def ensure_available(self) -> None:
        """Raise ``SecretStoreError`` unless entries can be kept securely right now."""
        ...

    def get_text(self, ref: str) -> str | None:
        """The entry under ``ref`` as stored, or ``None`` when there is none."""
        ...

    def set_text(self, ref: str, value: str) -> None:
        """Store ``value`` under ``ref``, replacing what was there."""
        ...

    def delete(self, ref: str) -> bool:
        """Remove the entry; ``False`` when there was none."""
        ...

    def entry_names(self) -> list[str] | None:
        """The ref of every entry under the tokenctl service, or ``None``.

        ``None`` when the backend cannot list its entries (the ``keyring`` API has no
        enumeration; the Secret Service can search by attributes).
        """
        ...

    def report(self) -> BackendReport:
        """Name the backend and say whether it is secure and usable, without raising."""
        ...

    def close(self) -> None:
        """Release connections held open; the keyring may be used again afterwards."""
        ...
