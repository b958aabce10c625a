"""A token set the provider issued but the inventory could not store, kept until it can.

A provider that rotates refresh tokens invalidates the one sent the moment it answers; if
the store then fails (a team store down for longer than its retries, a full disk), the
only valid refresh token is in the answer. It is kept in a private file of this tokenctl
home (0600, in a 0700 directory), **sealed** like every secret of tokenctl: AES-256-GCM
under a random key that only the OS keyring holds (service ``tokenctl``, entry
``unsaved-key``, made on first use), bound to the inventory and the token's number. The
next refresh of that token renews with it, stores the result and removes the file. A
kept set is bound to the stored set it replaces: once the record says another set was
stored (a login, another machine, the write that only seemed to fail), it is outdated
and removed. Without a usable keyring nothing is kept, and the error says so.
"""

from __future__ import annotations

import base64
import contextlib
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from tokenctl.errors import SecretStoreError
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
    """The inventory's id; the store's error when even that cannot be had (nothing kept)."""
    return ctx.inventory.inventory_id


@dataclass(frozen=True)
class KeptSet:
    """A kept token set as its file describes it (nothing of it unsealed)."""

    path: Path
    name: str  # the token's name when it was kept ("#N" when the file does not say)
    number: int | None
    inventory_id: str | None
    issued_at: str | None  # when the provider issued it (ISO 8601), as written


def kept_sets(ctx: AppContext) -> list[KeptSet]:
    """Every kept token set of this home, from the files' plain fields, sorted by name.

    ``OSError`` when the directory exists but cannot be read. A file that is not a kept
    set's document is listed under its file name, so nothing there goes unmentioned.
    """
    import os

    folder = ctx.paths.data_dir / "unsaved"
    try:  # scandir, not glob: glob takes an unreadable folder for an empty one
        with os.scandir(folder) as entries:
            paths = sorted(folder / e.name for e in entries if e.name.endswith(".json"))
    except FileNotFoundError:
        return []
    found = []
    for path in paths:
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:  # used up by a refresh meanwhile
            continue
        except (OSError, ValueError):
            document = None
        if not isinstance(document, dict):
            found.append(KeptSet(path, path.name, None, None, None))
            continue
        number = document.get("number")
        number = number if type(number) is int else None
        name = document.get("name")
        issued = document.get("issued_at")
        inventory = document.get("inventory_id")
        found.append(
            KeptSet(
                path,
                name if isinstance(name, str) and name else f"#{number}",
                number,
                inventory if isinstance(inventory, str) else None,
                issued if isinstance(issued, str) else None,
            )
        )
    return sorted(found, key=lambda kept: (kept.name, str(kept.path)))


def unsaved_file(ctx: AppContext, token: Token, inventory_id: str | None = None) -> Path:
    """Where the unsaved token set of ``token`` of this inventory is kept."""
    inventory = inventory_id or _inventory_id(ctx)
    return ctx.paths.data_dir / "unsaved" / f"{inventory}-token-{token.number}.json"


def _replaced(token: Token) -> str:
    """Which stored set a kept one replaces: the record's ``secret_set_at`` then."""
    return token.secret_set_at.isoformat() if token.secret_set_at else "none"


def _context(inventory_id: str, number: int, replaced: str) -> bytes:
    return json.dumps(["tokenctl", _FORMAT, "unsaved", inventory_id, number, replaced]).encode()


def _read_key(ctx: AppContext) -> bytes | None:
    """The sealing key in the OS keyring; ``None`` when there is none yet."""
    text = ctx.keyring.get_text(UNSAVED_KEY_REF)
    if not text:
        return None
    try:
        key = base64.b64decode(text, validate=True)
    except ValueError:
        key = b""
    if len(key) != 32:
        raise SecretStoreError(
            f"the OS keyring entry {UNSAVED_KEY_REF!r} of service 'tokenctl' is not a key "
            "tokenctl made",
            hint="remove that entry if nothing else uses it (`secret-tool clear service "
            f"tokenctl username {UNSAVED_KEY_REF}`), then run the command again",
        )
    return key


def _key(ctx: AppContext) -> bytes:
    """The sealing key, made once (under a lock: two processes never make two)."""
    import os

    from tokenctl.fsutil import exclusive_lock

    key = _read_key(ctx)
    if key is not None:
        return key
    with exclusive_lock(ctx.paths.locks_dir / "unsaved-key.lock"):
        key = _read_key(ctx)  # made by another process meanwhile
        if key is None:
            key = os.urandom(32)
            ctx.keyring.set_text(UNSAVED_KEY_REF, base64.b64encode(key).decode("ascii"))
    return key


def keep_unsaved(ctx: AppContext, token: Token, secrets: TokenSecrets, now: datetime) -> Path:
    """Seal the token set the store could not take into :func:`unsaved_file`; its path.

    ``token`` is the record as read before the refresh: the kept set replaces its
    secrets, and only while the record still says so is it used. ``OSError`` when the
    file cannot be written; a ``TokenctlError`` (keyring, store) when the key or the
    inventory's id cannot be had: nothing is written then.
    """
    from tokenctl.fsutil import write_private_atomic
    from tokenctl.secrets.sealing import seal

    inventory_id = _inventory_id(ctx)
    key = _key(ctx)
    replaced = _replaced(token)
    kept = {name: getattr(secrets, name) for name in _KEPT if getattr(secrets, name)}
    sealed = seal(key, json.dumps(kept), _context(inventory_id, token.number, replaced))
    document = {
        "format": _FORMAT,
        "inventory_id": inventory_id,
        "number": token.number,
        "name": token.name,
        "replaces": replaced,
        "issued_at": now.isoformat(),
        "sealed": base64.b64encode(sealed).decode("ascii"),
    }
    path = unsaved_file(ctx, token, inventory_id)
    write_private_atomic(path, json.dumps(document, indent=2).encode())
    return path


def unsaved_secrets(ctx: AppContext, token: Token) -> TokenSecrets | None:
    """The kept token set of ``token`` (the record as read now), if one is still due.

    One made for another stored set than the record's now (the store took a newer set
    since: a login, another machine's renewal, or the write that seemed to fail) is
    outdated and removed. One that does not open is an error naming the file: renewing
    with the stored refresh token instead could make the provider revoke the grant.
    """
    from tokenctl.secrets.sealing import UnsealError, unseal

    inventory_id = _inventory_id(ctx)
    path = unsaved_file(ctx, token, inventory_id)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        document = None
    if isinstance(document, dict) and document.get("replaces") != _replaced(token):
        forget_unsaved(ctx, token)
        return None
    kept: object = None
    if isinstance(document, dict):
        key = _read_key(ctx)
        try:
            sealed = base64.b64decode(str(document.get("sealed", "")), validate=True)
            context = _context(inventory_id, token.number, _replaced(token))
            kept = None if key is None else json.loads(unseal(key, sealed, context))
        except (ValueError, UnsealError):
            kept = None
    if not isinstance(kept, dict) or not isinstance(kept.get("refresh_token"), str):
        raise SecretStoreError(
            f"the token set kept for {token.name!r} in {path} cannot be opened (its key in "
            f"the OS keyring, entry {UNSAVED_KEY_REF!r}, is missing or another)",
            hint=f"if the provider still accepts the stored refresh token, remove {path} and "
            f"run the command again; otherwise log in again: `tokenctl renew {token.name}`",
        )
    return TokenSecrets(**{name: kept[name] for name in _KEPT if isinstance(kept.get(name), str)})


def forget_unsaved(ctx: AppContext, token: Token) -> None:
    """Remove the kept token set of ``token`` (stored now, outdated, or refused)."""
    with contextlib.suppress(FileNotFoundError):
        unsaved_file(ctx, token).unlink()
