"""How a reference names a token, shared by the inventory and the quick ``token`` path.

Kept free of the token model so the quick path (:mod:`tokenctl.services.quick_token`)
can use it without importing the records it does not build.
"""

from __future__ import annotations

import sqlite3
from typing import Any

#: The inventory schema this tokenctl writes and reads; ``sqlite.MIGRATIONS`` reaches it.
SCHEMA_VERSION = 3


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
