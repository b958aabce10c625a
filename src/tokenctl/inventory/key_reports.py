"""What ``doctor`` and ``tokenctl key`` report about an inventory's data key.

Apart from :mod:`tokenctl.inventory.sealed`, so that opening an inventory (``list``)
does not create these dataclasses, which only the key commands need.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class SecretSummary:
    """What ``doctor`` and ``key status`` say about an inventory's sealed secrets."""

    inventory_id: str
    key_entry: str
    #: The version new secrets are sealed with (``None``: no secret was ever sealed).
    key_version: int | None
    #: The versions the keyring entry holds; ``None`` when there is no entry.
    keyring_versions: tuple[int, ...] | None
    tokens: int
    client_secrets: int
    #: Sealed values (each field of a token, each client secret).
    values: int
    by_version: dict[int, int] = field(default_factory=dict)
    #: Tokens whose secrets are still in per-token keyring entries.
    legacy_pending: int = 0
    #: Names of tokens (and ``definition/client`` of clients) whose secrets do not open.
    unreadable: tuple[str, ...] = ()
    #: Why the keyring entry could not be read, if it could not.
    key_problem: str | None = None


@dataclass(frozen=True)
class RotationResult:
    """What ``key rotate`` did: the new version, values moved, versions dropped.

    ``stuck`` names the tokens (and clients) whose values did not open: then the old
    versions stay in the keyring entry and the rotation is not finished.
    """

    version: int | None
    moved: int
    resumed: bool
    dropped: tuple[int, ...]
    stuck: tuple[str, ...] = ()
