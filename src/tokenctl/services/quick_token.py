"""``tokenctl token REF`` when nothing needs doing: the stored access token, read at once.

Scripts call ``token`` before every request, so its common case must cost no more than
reading the keyring (``benchmarks/token_vs_keyring.py``). The full path,
:func:`tokenctl.services.access.current_access_token`, builds the token record and its
definition: ~15 ms of imports before any work, most of it creating dataclasses. This
path reads the few inventory columns it needs and a digest of the definitions, and
answers only when the full path would hand out the very same stored value without doing
anything else. In every other case (a refresh due, not effective, invalid, no secret, an
unknown definition, a newer inventory, anything unexpected) it answers ``None`` and the
full path runs, with its refresh, its errors and its hints.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from tokenctl.inventory.lookup import SCHEMA_VERSION, find_row
from tokenctl.paths import Paths
from tokenctl.timeutil import MAX_DURATION, from_iso

#: Refresh this long before the access token expires, so it outlives the request; a
#: definition's ``lifetimes.refresh_margin`` replaces it.
REFRESH_MARGIN = timedelta(seconds=60)


def refresh_margin(configured: timedelta | None) -> timedelta:
    """How long before expiry an access token is refreshed: the definition's margin, or 60 s.

    A configured ``0s`` means exactly that: refresh only once expired.
    """
    return REFRESH_MARGIN if configured is None else configured


#: Changes whenever the layout of the definitions digest changes.
_DIGEST_FORMAT = 1
_SELECT = "SELECT state, definition, secret_ref, secret_set_at, invalid_at, expires_at FROM tokens"
#: What each kind of definition hands out, the key in the keyring entry's JSON.
_PART_BY_KIND = {"oauth2": "access_token", "static": "pass_code"}


def quick_access_token(
    paths: Paths, ref: str, now: datetime, read_secret: Callable[[str], str | None]
) -> str | None:
    """The value ``token REF`` prints when no refresh and no error is due, else ``None``.

    ``read_secret`` reads a keyring entry as stored (``SecretStore.get_text``); its
    errors are the full path's errors too, so they pass through.
    """
    row = _token_row(paths.inventory_file, ref)
    if row is None:
        return None
    state, definition, secret_ref, secret_set_at, invalid_at, expires_at = row
    if state != "effective" or secret_set_at is None:
        return None
    policy = definition_policies(paths).get(definition)
    if policy is None:
        return None
    kind, margin_seconds = policy
    part = _PART_BY_KIND.get(kind)
    if part is None:
        return None
    expiry = None if expires_at is None else from_iso(expires_at)
    if kind == "oauth2":
        margin = refresh_margin(
            None if margin_seconds is None else timedelta(seconds=margin_seconds)
        )
        if invalid_at is not None or (expiry is not None and expiry - now <= margin):
            return None
    elif expiry is not None and expiry <= now:
        return None
    stored = read_secret(secret_ref)
    if stored is None:
        return None
    try:
        value = json.loads(stored).get(part)
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) and value else None


def _token_row(inventory_file: Path, ref: str) -> Any:
    """The token's columns, or ``None`` when the inventory cannot answer as it stands."""
    try:
        # mode=rw: never create the file; reading a WAL database may need to write its index.
        connection = sqlite3.connect(f"{inventory_file.as_uri()}?mode=rw", uri=True, timeout=30)
    except sqlite3.Error:
        return None
    try:
        if connection.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
            return None  # the full path migrates, or refuses a newer inventory
        return find_row(connection, _SELECT, ref)
    except sqlite3.Error:
        return None
    finally:
        connection.close()


def _file_stamp(path: Path) -> list[int] | None:
    try:
        status = os.stat(path)
    except OSError:
        return None
    # ctime too: an edit that keeps the size and puts the mtime back still changes it.
    return [status.st_size, status.st_mtime_ns, status.st_ctime_ns, status.st_ino]


def _digest_key(paths: Paths) -> list[Any]:
    from tokenctl import definitions

    package = Path(definitions.__file__).parent
    return [
        _DIGEST_FORMAT,
        _file_stamp(package / "builtin.toml"),
        _file_stamp(package / "model.py"),  # the parser: a new tokenctl may read them otherwise
        _file_stamp(paths.definitions_file),
    ]


def _policies_from(cached: Any, key: list[Any]) -> dict[str, tuple[str, int | None]] | None:
    """The policies of a digest read back, or ``None`` unless it is current and well-formed."""
    if not isinstance(cached, dict) or cached.get("key") != key:
        return None
    policies = cached.get("policies")
    if not isinstance(policies, dict):
        return None
    checked: dict[str, tuple[str, int | None]] = {}
    for name, policy in policies.items():
        if not (isinstance(policy, list) and len(policy) == 2):
            return None
        kind, margin = policy
        if kind not in _PART_BY_KIND or not (
            margin is None or (type(margin) is int and 0 <= margin <= MAX_DURATION.total_seconds())
        ):
            return None
        checked[name] = (kind, margin)
    return checked


def definition_policies(paths: Paths) -> Mapping[str, tuple[str, int | None]]:
    """Kind and refresh margin (seconds) of every definition in effect, by name.

    Read from a digest in the cache directory, made from the full, validated definitions
    whenever builtin.toml or definitions.toml changed since; empty when they do not load
    (the full path then reports why).
    """
    key = _digest_key(paths)
    digest_file = paths.definitions_digest
    try:
        cached = _policies_from(json.loads(digest_file.read_text(encoding="utf-8")), key)
    except (OSError, ValueError, RecursionError):  # a damaged cache is made again
        cached = None
    if cached is not None:
        return cached
    from tokenctl.definitions.registry import load_definitions
    from tokenctl.errors import TokenctlError

    try:
        loaded = load_definitions(paths.definitions_file)
    except TokenctlError:
        return {}
    policies: dict[str, tuple[str, int | None]] = {}
    for definition in loaded:
        margin = definition.lifetimes.refresh_margin
        policies[definition.name] = (
            definition.kind.value,
            None if margin is None else int(margin.total_seconds()),
        )
    from tokenctl.fsutil import write_private_atomic

    try:
        payload = json.dumps({"key": key, "policies": policies})
        write_private_atomic(digest_file, payload.encode("utf-8"))
    except OSError:  # a read-only home only costs the next call the full load
        pass
    return policies
