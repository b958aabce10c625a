"""How a reference names a token, shared by the inventory and the quick ``token`` path.

Kept free of the token model so the quick path (:mod:`tokenctl.services.quick_token`)
can use it without importing the records it does not build.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tokenctl.errors import InventoryError

#: The inventory schema this tokenctl writes and reads; ``sqlite.MIGRATIONS`` reaches it.
SCHEMA_VERSION = 3

#: SQLite's primary result codes for a file whose content is not a sound database.
_SQLITE_CORRUPT = 11
_SQLITE_NOTADB = 26


def restore_advice(path: Path) -> str:
    """How to get a damaged inventory back; the secrets themselves are in the OS keyring."""
    return (
        f"restore {path.name} from a backup, or recover what is readable into a new file "
        f'(`sqlite3 {path} ".recover" | sqlite3 {path.name}.recovered`, then move it in '
        f"place of {path.name}); the secrets are in the OS keyring and are not lost"
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
