"""A token set the provider issued but the inventory could not store, kept until it can.

A provider that rotates refresh tokens invalidates the one sent the moment it answers; if
the store then fails (a team store down for longer than its retries, a full disk), the
only valid refresh token is in the answer. It is written to a private file of this
tokenctl home (0600, in a 0700 directory) and the next refresh of that token renews with
it, stores the result and removes the file. Nothing else reads these files.
"""

from __future__ import annotations

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


def _inventory_id(ctx: AppContext) -> str:
    try:
        return ctx.inventory.inventory_id
    except Exception:  # the store that failed may fail here too: the number still tells
        return "unknown"


def unsaved_file(ctx: AppContext, token: Token) -> Path:
    """Where the unsaved token set of ``token`` is kept."""
    return ctx.paths.data_dir / "unsaved" / f"token-{token.number}.json"


def keep_unsaved(ctx: AppContext, token: Token, secrets: TokenSecrets, now: datetime) -> Path:
    """Write the token set the store could not take to :func:`unsaved_file`; its path."""
    from tokenctl.fsutil import write_private_atomic

    path = unsaved_file(ctx, token)
    document = {
        "inventory_id": _inventory_id(ctx),
        "number": token.number,
        "name": token.name,
        "issued_at": now.isoformat(),
        "secrets": {name: getattr(secrets, name) for name in _KEPT if getattr(secrets, name)},
    }
    write_private_atomic(path, json.dumps(document, indent=2).encode())
    return path


def unsaved_secrets(ctx: AppContext, token: Token) -> TokenSecrets | None:
    """The kept token set of ``token`` in this inventory, if there is one."""
    path = unsaved_file(ctx, token)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(document, dict) or document.get("number") != token.number:
        return None
    if document.get("inventory_id") not in (_inventory_id(ctx), "unknown"):
        return None  # another inventory's token of that number (the store was changed)
    kept = document.get("secrets")
    if not isinstance(kept, dict) or not isinstance(kept.get("refresh_token"), str):
        return None
    return TokenSecrets(**{name: kept[name] for name in _KEPT if isinstance(kept.get(name), str)})


def forget_unsaved(ctx: AppContext, token: Token) -> None:
    """Remove the kept token set of ``token`` (it is stored now)."""
    with contextlib.suppress(FileNotFoundError):
        unsaved_file(ctx, token).unlink()
