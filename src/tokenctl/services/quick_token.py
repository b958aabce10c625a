"""``tokenctl token REF`` when nothing needs doing: the stored access token, read at once.

Scripts call ``token`` before every request, so its common case must cost no more than
reading the keyring (``benchmarks/token_vs_keyring.py``). The full path,
:func:`tokenctl.services.access.current_access_token`, builds the token record and its
definition: ~15 ms of imports before any work, most of it creating dataclasses. This
path reads the few inventory columns it needs (the sealed value among them), a digest
of the definitions and the data key, and answers only when the full path would hand out
the very same stored value without doing anything else. In every other case (a refresh
due, not effective, invalid, no secret, an unknown definition, a newer inventory,
anything unexpected) it answers ``None`` and the full path runs, with its refresh, its
errors and its hints.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from tokenctl.definitions import DefinitionKind
from tokenctl.inventory.lookup import access_columns
from tokenctl.paths import Paths
from tokenctl.secrets import data_key_ref
from tokenctl.services.access_decision import SERVED_PART, AccessDecision, decide_access
from tokenctl.timeutil import MAX_DURATION, from_iso

#: Changes whenever the layout of the definitions digest changes.
_DIGEST_FORMAT = 1


def quick_access_token(
    paths: Paths, ref: str, now: datetime, read_entry: Callable[[str], str | None]
) -> str | None:
    """The value ``token REF`` prints when no refresh and no error is due, else ``None``.

    ``read_entry`` reads a keyring entry as stored (``Keyring.get_text``): here the data
    key's. Its errors are the full path's errors too, so they pass through. A value that
    does not open, or an inventory with secrets still in legacy keyring entries, is left to
    the full path (which says why, or moves the entries in). So is the team store
    (config.toml's ``[store]``).
    """
    if not local_store_configured(paths):
        return None  # the team store: a local file (left from before) is not the inventory
    row = access_columns(paths.inventory_file, ref)
    # Legacy entries still to move in (an upgrade interrupted): the full path finishes it.
    if row is None or row.legacy_pending or row.inventory_id is None:
        return None
    policy = definition_policies(paths).get(row.definition)
    kind = None if policy is None else DefinitionKind(policy[0])
    margin = None if policy is None or policy[1] is None else timedelta(seconds=policy[1])
    decision = decide_access(
        effective=row.state == "effective",
        secret_set=row.secret_set_at is not None,
        invalid=row.invalid_at is not None,
        expires_at=None if row.expires_at is None else from_iso(row.expires_at),
        kind=kind,
        margin=margin,
        now=now,
    )
    if decision is not AccessDecision.SERVE:
        return None
    assert kind is not None  # serving needs a known definition
    part = SERVED_PART[kind]
    sealed = row.access_token if part == "access_token" else row.pass_code
    if sealed is None or row.key_version is None:
        return None
    entry = read_entry(data_key_ref(row.inventory_id))
    if entry is None:
        return None
    from tokenctl.secrets.sealing import DataKeys, UnsealError, token_context, unseal

    try:
        key = DataKeys.from_entry(entry).versions.get(row.key_version)
        if key is None:
            return None
        context = token_context(row.inventory_id, row.number, part, row.key_version)
        value = unseal(key, sealed, context)
    except (ValueError, UnsealError):
        return None
    return value or None


def local_store_configured(paths: Paths) -> bool:
    """Whether config.toml leaves the inventory in the local store (the quick path's).

    Cheap: a config.toml that does not mention ``store`` is not parsed. A file that does
    not load is left to the full path, which says what is wrong with it.
    """
    try:
        text = paths.config_file.read_bytes()
    except FileNotFoundError:
        return True
    except OSError:
        return False
    if b"store" not in text:
        return True
    from tokenctl.config import StoreKind, load_config
    from tokenctl.errors import TokenctlError

    try:
        return load_config(paths.config_file).store.kind is StoreKind.LOCAL
    except TokenctlError:
        return False


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
        if kind not in SERVED_PART or not (
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
