"""How a reference names a token, and the quick reads of the inventory.

The quick ``token`` path and shell completion read the existing file without creating,
migrating or locking it (one read-only opener).

Kept free of the token model so the quick path (:mod:`tokenctl.services.quick_token`)
can use it without importing the records it does not build.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from tokenctl.errors import InventoryError

#: The inventory schema this tokenctl writes and reads; ``sqlite.MIGRATIONS`` reaches it.
SCHEMA_VERSION = 6

#: SQLite's primary result codes for a file whose content is not a sound database.
_SQLITE_CORRUPT = 11
_SQLITE_NOTADB = 26


def restore_advice(path: Path) -> str:
    """How to get a damaged inventory back, and what a backup of it holds.

    The secrets are sealed in the inventory itself, so a restored copy brings back the
    secrets of its day, and opens only with this inventory's data key.
    """
    return (
        f"restore {path.name} from a backup, or recover what is readable into a new file "
        f'(`sqlite3 {path} ".recover" | sqlite3 {path.name}.recovered`, then move it in '
        f"place of {path.name}); the secrets are sealed in this file, so a backup holds them "
        "as they were when it was made (refresh tokens rotated since are used up), and "
        "either file needs this inventory's data key in the OS keyring to read them"
    )


def is_damage(error: sqlite3.DatabaseError) -> bool:
    """True when SQLite says the file is malformed or not a database at all."""
    code = getattr(error, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (_SQLITE_CORRUPT, _SQLITE_NOTADB)
    return type(error) is sqlite3.DatabaseError


def inventory_failure(path: Path, error: sqlite3.DatabaseError) -> InventoryError:
    """The error a command reports when SQLite fails on the inventory ``path``.

    A damaged file (a bad page, or not SQLite at all) says so and how to restore it; any
    other failure names the file and SQLite's reason.
    """
    from tokenctl.errors import InventoryError

    if is_damage(error):
        return InventoryError(
            f"the token inventory {path} is damaged ({error})", hint=restore_advice(path)
        )
    return InventoryError(
        f"the token inventory {path} failed: {error}",
        hint="run `tokenctl doctor`; restore the file from a backup if it is damaged",
    )


def find_row(connection: sqlite3.Connection, select: str, ref: str) -> Any:
    """The row ``select`` returns for the token ``ref`` names, or ``None``.

    A reference is a number, else a name, else an authentication code, in that order.
    """
    row = None
    if ref.isdigit():
        row = connection.execute(f"{select} WHERE number = ?", (int(ref),)).fetchone()
    if row is None:
        row = connection.execute(f"{select} WHERE name = ?", (ref,)).fetchone()
    if row is None:
        row = connection.execute(f"{select} WHERE authentication_code = ?", (ref,)).fetchone()
    return row


#: The columns :func:`access_columns` reads from ``tokens``, in this order.
_ACCESS_SELECT = (
    "SELECT number, state, definition, legacy_secret_ref, secret_set_at, invalid_at, expires_at "
    "FROM tokens"
)


class AccessColumns(NamedTuple):
    """What ``token REF`` needs of one token, as stored: ISO 8601 times, sealed values."""

    state: str
    definition: str
    legacy_secret_ref: str | None
    secret_set_at: str | None
    invalid_at: str | None
    expires_at: str | None
    inventory_id: str | None
    #: Whether any token's secrets are still in a legacy keyring entry (to be moved in).
    legacy_pending: bool
    #: The token's number, the key version and the sealed values it may hand out.
    number: int
    key_version: int | None
    access_token: bytes | None
    pass_code: bytes | None


def _open_read_only(inventory_file: Path, *, timeout: float) -> sqlite3.Connection | None:
    """A connection to the existing inventory that never creates, migrates or locks it.

    ``None`` when there is no file or SQLite cannot open it.
    """
    try:
        # mode=rw: never create the file; reading a WAL database may need to write its index.
        return sqlite3.connect(f"{inventory_file.as_uri()}?mode=rw", uri=True, timeout=timeout)
    except sqlite3.Error:
        return None


def token_names(inventory_file: Path) -> list[tuple[int, str, str]]:
    """``(number, name, definition)`` of every token in number order, for shell completion.

    Quick (a completion runs on every Tab): empty when there is no inventory (yet) or it
    cannot be read as it stands.
    """
    connection = _open_read_only(inventory_file, timeout=2)
    if connection is None:
        return []
    try:
        rows: list[tuple[int, str, str]] = connection.execute(
            "SELECT number, name, definition FROM tokens ORDER BY number"
        ).fetchall()
        return rows
    except sqlite3.Error:
        return []
    finally:
        connection.close()


def access_columns(inventory_file: Path, ref: str) -> AccessColumns | None:
    """What ``token REF`` needs of the token ``ref`` names, read without building a record.

    Its sealed values too: the quick path opens them itself, with the data key.

    ``None`` when the inventory cannot answer as it stands: no file, another schema
    version (the full path migrates, or refuses a newer inventory), no such token, or
    any SQLite error. The full path then runs and reports it.
    """
    connection = _open_read_only(inventory_file, timeout=30)
    if connection is None:
        return None
    try:
        if connection.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
            return None
        row = find_row(connection, _ACCESS_SELECT, ref)
        if row is None:
            return None
        number, state, definition, legacy, secret_set_at, invalid_at, expires_at = row
        meta = connection.execute("SELECT value FROM meta WHERE name = 'inventory_id'").fetchone()
        sealed = connection.execute(
            "SELECT key_version, access_token, pass_code FROM token_secrets WHERE number = ?",
            (number,),
        ).fetchone()
        key_version, access_token, pass_code = sealed or (None, None, None)
        pending = connection.execute(
            "SELECT 1 FROM tokens WHERE legacy_secret_ref IS NOT NULL LIMIT 1"
        ).fetchone()
        return AccessColumns(
            state,
            definition,
            legacy,
            secret_set_at,
            invalid_at,
            expires_at,
            None if meta is None else meta[0],
            pending is not None,
            number,
            key_version,
            access_token,
            pass_code,
        )
    except sqlite3.Error:
        return None
    finally:
        connection.close()
