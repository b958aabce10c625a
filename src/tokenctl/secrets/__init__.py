"""The secret store: where the secret parts of tokens live (the OS keyring)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from tokenctl.models import TokenSecrets

#: The keyring service name every tokenctl entry is stored under.
KEYRING_SERVICE = "tokenctl"


@dataclass(frozen=True)
class BackendReport:
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

    def set(self, ref: str, secrets: TokenSecrets) -> None:
        """Store ``secrets`` under ``ref``, replacing what was there."""
        ...

    def delete(self, ref: str) -> bool:
        """Remove the entry; ``False`` when there was none."""
        ...

    def report(self) -> BackendReport:
        """Name the backend and say whether it is secure and usable, without raising."""
        ...
