"""The secret store: where the secret parts of tokens live (the OS keyring)."""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple, Protocol

if TYPE_CHECKING:  # the quick `token` path reads entries as text, without the model
    from tokenctl.models import TokenSecrets

#: The keyring service name every tokenctl entry is stored under.
KEYRING_SERVICE = "tokenctl"

#: How the names (refs) of tokenctl's own entries begin: a token's secrets, and a
#: definition's client secret. ``doctor`` looks for orphans among names like these.
TOKEN_REF_PREFIX = "token-"  # noqa: S105 - a name prefix, not a secret
CLIENT_REF_PREFIX = "definition-"


def new_token_secret_ref() -> str:
    """A fresh, unique name for a new token's keyring entry."""
    import uuid

    return f"{TOKEN_REF_PREFIX}{uuid.uuid4().hex}"


def client_secret_ref(definition_name: str, client_id: str) -> str:
    """The keyring entry that holds the secret of one client registration of a definition.

    The client id is part of the name so that a definition switched to another client
    never sends the old client's secret.
    """
    return f"{CLIENT_REF_PREFIX}{definition_name}-client-{client_id}"


def parse_entry(service: str, ref: str, stored: str | None) -> TokenSecrets | None:
    """The secrets in a keyring entry as stored; ``None`` for no entry.

    An entry tokenctl did not write is an error that says how to replace it.
    """
    if stored is None:
        return None
    from tokenctl.errors import SecretStoreError
    from tokenctl.models import TokenSecrets

    try:
        return TokenSecrets.from_json(stored)
    except (ValueError, TypeError):
        raise SecretStoreError(
            f"the keyring entry {service}/{ref} is not a tokenctl secret",
            hint="renew the token to write its secret again",
        ) from None


class BackendReport(NamedTuple):
    """What ``doctor`` says about the secret store."""

    name: str
    secure: bool
    problem: str | None = None


class SecretStore(Protocol):
    """Keeps each token's :class:`TokenSecrets` under its ``secret_ref``.

    Implementations refuse to work (raising ``SecretStoreError``) rather than store a
    secret somewhere insecure.
    """

    def ensure_available(self) -> None:
        """Raise ``SecretStoreError`` unless secrets can be stored securely right now."""
        ...

    def get(self, ref: str) -> TokenSecrets | None:
        """The secrets stored under ``ref``, or ``None`` when there are none."""
        ...

    def get_text(self, ref: str) -> str | None:
        """The entry under ``ref`` as stored (JSON), or ``None`` when there is none."""
        ...

    def set(self, ref: str, secrets: TokenSecrets) -> None:
        """Store ``secrets`` under ``ref``, replacing what was there."""
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
        """Release connections held open; the store may be used again afterwards."""
        ...
