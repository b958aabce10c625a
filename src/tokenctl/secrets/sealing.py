"""AES-256-GCM sealing of secrets under an inventory's data key, and the key's keyring entry.

One random 256-bit data key per inventory lives in the OS keyring (entry
``inventory-<id>`` of service ``tokenctl``); every secret the inventory holds is sealed
with it. A sealed value is ``nonce (12 bytes) || ciphertext || tag (16 bytes)``, with a
fresh random nonce per write. The associated data names what the value is (the
inventory, the token number or client registration, the field, the key version), so a
value copied to another token, field or inventory, or presented under another key
version, fails its tag check instead of decrypting.

The keyring entry is a small JSON document listing the key versions still in use:
normally one; two while ``tokenctl key rotate`` moves every secret to the newer one.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tokenctl.secrets import Keyring

#: Bytes of a data key (AES-256) and of a GCM nonce (96 bits, as NIST SP 800-38D advises).
KEY_BYTES = 32
NONCE_BYTES = 12
#: The layout of the keyring entry and of the associated data; raised on an incompatible change.
ENTRY_FORMAT = 1

#: The secret fields of a token, each sealed on its own.
TOKEN_FIELDS = ("access_token", "refresh_token", "id_token", "pass_code")


class NewerEntryError(ValueError):
    """A data key entry in a later format: a newer tokenctl wrote it; never to be replaced."""


class UnsealError(Exception):
    """A sealed value does not open: wrong key, another owner, or altered bytes."""


@dataclass(frozen=True)
class DataKeys:
    """The data key versions of one inventory, as its keyring entry lists them."""

    versions: dict[int, bytes]

    @property
    def newest(self) -> int:
        """The highest version: the one a rotation moves every secret to."""
        return max(self.versions)

    @classmethod
    def generate(cls, version: int = 1) -> DataKeys:
        """A fresh random key of ``version``."""
        return cls({version: os.urandom(KEY_BYTES)})

    def with_version(self, version: int) -> DataKeys:
        """These keys plus a fresh random one of ``version`` (a rotation's start)."""
        return DataKeys({**self.versions, version: os.urandom(KEY_BYTES)})

    def only(self, version: int) -> DataKeys:
        """Just the key of ``version`` (a finished rotation)."""
        return DataKeys({version: self.versions[version]})

    def to_entry(self) -> str:
        """The keyring entry's text."""
        keys = {
            str(version): base64.b64encode(key).decode("ascii")
            for version, key in sorted(self.versions.items())
        }
        return json.dumps({"format": ENTRY_FORMAT, "keys": keys})

    @classmethod
    def from_entry(cls, text: str) -> DataKeys:
        """Read an entry back; ``ValueError`` for one tokenctl did not write."""
        try:
            data = json.loads(text)
        except (ValueError, RecursionError):
            raise ValueError("not JSON") from None
        if not isinstance(data, dict):
            raise ValueError("not a tokenctl data key entry")
        written = data.get("format")
        if type(written) is int and written > ENTRY_FORMAT:
            raise NewerEntryError(f"format {written}, written by a newer tokenctl")
        if written != ENTRY_FORMAT:
            raise ValueError("not a tokenctl data key entry")
        keys = data.get("keys")
        if not isinstance(keys, dict) or not keys:
            raise ValueError("no keys")
        versions: dict[int, bytes] = {}
        for version, encoded in keys.items():
            if not (isinstance(version, str) and version.isdigit() and isinstance(encoded, str)):
                raise ValueError("a malformed key")
            key = base64.b64decode(encoded, validate=True)
            if len(key) != KEY_BYTES:
                raise ValueError("a key of the wrong size")
            versions[int(version)] = key
        return cls(versions)


def token_context(inventory_id: str, number: int, field: str, version: int) -> bytes:
    """The associated data of one field of token ``number``."""
    parts = ["tokenctl", ENTRY_FORMAT, inventory_id, "token", number, field, version]
    return json.dumps(parts).encode("utf-8")


def client_context(inventory_id: str, definition: str, client_id: str, version: int) -> bytes:
    """The associated data of the client secret of ``client_id`` in ``definition``."""
    parts = ["tokenctl", ENTRY_FORMAT, inventory_id, "client", definition, client_id, version]
    return json.dumps(parts).encode("utf-8")


def seal(key: bytes, plaintext: str, context: bytes) -> bytes:
    """``plaintext`` encrypted and authenticated under ``key``, bound to ``context``."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext.encode("utf-8"), context)


def unseal(key: bytes, sealed: bytes, context: bytes) -> str:
    """What :func:`seal` sealed; :class:`UnsealError` when the value or context differ."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    if len(sealed) < NONCE_BYTES + 16:
        raise UnsealError("too short to be a sealed value")
    try:
        plain = AESGCM(key).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], context)
    except InvalidTag:
        raise UnsealError("the authentication tag does not match") from None
    try:
        return plain.decode("utf-8")
    except UnicodeDecodeError:
        raise UnsealError("not text") from None


def read_data_keys(keyring: Keyring, ref: str) -> DataKeys | None:
    """The data keys in the keyring entry ``ref``; ``None`` when there is no entry.

    An entry that is not a tokenctl data key is a ``SecretStoreError``: it is never
    replaced, since the secrets sealed with the key it once held would be lost.
    """
    text = keyring.get_text(ref)
    if text is None:
        return None
    try:
        return DataKeys.from_entry(text)
    except NewerEntryError as error:
        from tokenctl.errors import NewerDataKeyError

        raise NewerDataKeyError(
            f"the keyring entry tokenctl/{ref} holds a data key in a {error}",
            hint="upgrade tokenctl; the entry is left as it is",
        ) from None
    except ValueError as error:
        from tokenctl.errors import SecretStoreError

        raise SecretStoreError(
            f"the keyring entry tokenctl/{ref} is not a tokenctl data key ({error})",
            hint="restore the entry from a backup of the keyring; see docs/keyring.md",
        ) from None
