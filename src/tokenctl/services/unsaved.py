"""A token set the provider issued but the inventory could not store, kept until it can.

A provider that rotates refresh tokens invalidates the one sent the moment it answers; if
the store then fails (a team store down for longer than its retries, a full disk), the
only valid refresh token is in the answer. It is kept in a private file of this tokenctl
home (0600, in a 0700 directory), **sealed** like every secret of tokenctl: AES-256-GCM
under a random key that only the OS keyring holds (service ``tokenctl``, entry
``unsaved-key``, made on first use), bound to the inventory and the token's number. The
next refresh of that token renews with it, stores the result and removes the file.
Without a usable keyring nothing is kept, and the error says so.
"""

from __future__ import annotations

import base64
import contextlib
import json
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from tokenctl.models import Token, TokenSecrets

if TYPE_CHECKING:
    from tokenctl.context import AppContext

#: The parts of a token set that are kept.
_KEPT = ("access_token", "refresh_token", "id_token", "token_type")
#: The keyring entry of the key that seals kept token sets (one per keyring).
UNSAVED_KEY_REF = "unsaved-key"
#: Version of the sealed document.
_FORMAT = 1


def _inventory_id(ctx: AppContext) -> str:
    try:
        return ctx.inventory.inventory_id
    except Exception:  # the store that failed may fail here too: the number still tells
        return "unknown"


def unsaved_file(ctx: AppContext, token: Token) -> Path:
    """Where the unsaved token set of ``token`` is kept."""
    return ctx.paths.data_dir / "unsaved" / f"token-{token.number}.json"


def _context(inventory_id: str, number: int) -> bytes:
    return json.dumps(["tokenctl", _FORMAT, "unsaved", inventory_id, number]).encode()


def _key(ctx: AppContext, *, create: bool) -> bytes | None:
    """The sealing key from the OS keyring; made (and stored there) on first use."""
    import os

    text = ctx.keyring.get_text(UNSAVED_KEY_REF)
    if text:
        with contextlib.suppress(ValueError):
            key = base64.b64decode(text, validate=True)
            if len(key) == 32:
                return key
    if not create:
        return None
    key = os.urandom(32)
    ctx.keyring.set_text(UNSAVED_KEY_REF, base64.b64encode(key).decode("ascii"))
    return key


def keep_unsaved(ctx: AppContext, token: Token, secrets: TokenSecrets, now: datetime) -> Path:
    """Seal the token set the store could not take into :func:`unsaved_file`; its path.

    ``OSError`` when the file cannot be written; the keyring's own error
    (``SecretStoreError``) when it cannot keep the key: nothing is then written.
    """
    from tokenctl.fsutil import write_private_atomic
    from tokenctl.secrets.sealing import seal

    inventory_id = _inventory_id(ctx)
    key = _key(ctx, create=True)
    assert key is not None  # made when missing
    kept = {name: getattr(secrets, name) for name in _KEPT if getattr(secrets, name)}
    sealed = seal(key, json.dumps(kept), _context(inventory_id, token.number))
    document = {
        "format": _FORMAT,
        "inventory_id": inventory_id,
        "number": token.number,
        "name": token.name,
        "issued_at": now.isoformat(),
        "sealed": base64.b64encode(sealed).decode("ascii"),
    }
    path = unsaved_file(ctx, token)
    write_private_atomic(path, json.dumps(document, indent=2).encode())
    return path


def unsaved_secrets(ctx: AppContext, token: Token) -> TokenSecrets | None:
    """The kept token set of ``token`` in this inventory, if there is one that opens."""
    from tokenctl.secrets.sealing import UnsealError, unseal

    path = unsaved_file(ctx, token)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(document, dict) or document.get("number") != token.number:
        return None
    inventory_id = document.get("inventory_id")
    if inventory_id not in (_inventory_id(ctx), "unknown") or not isinstance(inventory_id, str):
        return None  # another inventory's token of that number (the store was changed)
    key = _key(ctx, create=False)
    if key is None:
        return None
    try:
        sealed = base64.b64decode(str(document.get("sealed", "")), validate=True)
        kept = json.loads(unseal(key, sealed, _context(inventory_id, token.number)))
    except (ValueError, UnsealError):
        return None
    if not isinstance(kept, dict) or not isinstance(kept.get("refresh_token"), str):
        return None
    return TokenSecrets(**{name: kept[name] for name in _KEPT if isinstance(kept.get(name), str)})


def forget_unsaved(ctx: AppContext, token: Token) -> None:
    """Remove the kept token set of ``token`` (it is stored now)."""
    with contextlib.suppress(FileNotFoundError):
        unsaved_file(ctx, token).unlink()
