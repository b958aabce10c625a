"""The sealed secrets of a SQLite inventory: its data key, and the rows sealed with it.

:class:`SqliteInventory` owns the connection and its transactions; this module does the
part of each that concerns secrets, always on a connection inside the caller's
transaction, so a secret and the record change it belongs to commit together.

The data key (one per inventory, see :mod:`tokenctl.secrets.sealing`) is read from the
OS keyring once per command, on the first secret read or written: ``list``, ``show``
and ``check`` open no keyring. A key is made only inside a write transaction and only
while nothing is sealed, so no two processes ever make different keys and a lost key is
never silently replaced while secrets sealed with it exist.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from tokenctl.errors import DataKeyMissingError, SecretStoreError, SecretUnreadableError
from tokenctl.models import TokenSecrets
from tokenctl.secrets import Keyring, data_key_ref
from tokenctl.secrets.sealing import (
    TOKEN_FIELDS,
    DataKeys,
    UnsealError,
    client_context,
    read_data_keys,
    seal,
    token_context,
    unseal,
)

#: The meta row with the key version new secrets are sealed with; absent until the first.
KEY_VERSION = "key_version"
INVENTORY_ID = "inventory_id"

_TOKEN_COLUMNS = ", ".join(TOKEN_FIELDS)
_UPSERT_TOKEN = (
    f"INSERT OR REPLACE INTO token_secrets (number, key_version, token_type, {_TOKEN_COLUMNS}) "  # noqa: S608
    f"VALUES (?, ?, ?, {', '.join('?' for _ in TOKEN_FIELDS)})"
)
_SELECT_TOKEN = (
    f"SELECT s.number, s.key_version, s.token_type, {', '.join('s.' + f for f in TOKEN_FIELDS)}, "  # noqa: S608
    "COALESCE(t.name, '#' || s.number) FROM token_secrets s LEFT JOIN tokens t USING (number)"
)

#: How a token whose sealed secrets do not open is renewed (the hint of that error).
RENEW_HINT = (
    "store new ones: `tokenctl renew {name} --login` for an OAuth token, "
    "`tokenctl renew {name} --secret-stdin` for a hand-entered one"
)


def meta_value(connection: sqlite3.Connection, name: str) -> str | None:
    """One row of the ``meta`` table, or ``None``."""
    row = connection.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
    return None if row is None else str(row[0])


def set_meta(connection: sqlite3.Connection, name: str, value: str) -> None:
    """Set one row of the ``meta`` table."""
    connection.execute("INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)", (name, value))


def sealed_count(connection: sqlite3.Connection) -> int:
    """How many rows (a token's secrets, a client secret) are sealed in the inventory."""
    row = connection.execute(
        "SELECT (SELECT count(*) FROM token_secrets) + (SELECT count(*) FROM client_secrets)"
    ).fetchone()
    return int(row[0])


class SealedSecrets:
    """The data key of one inventory and the sealing of its rows.

    ``keyring`` is called on first need only. Every method that takes a connection
    runs inside the caller's transaction (reads may run outside one).
    """

    def __init__(self, inventory_id: str, keyring: Callable[[], Keyring] | None) -> None:
        self.inventory_id = inventory_id
        self.key_ref = data_key_ref(inventory_id)
        self._keyring_source = keyring
        self._keys: DataKeys | None = None

    # -- the key -------------------------------------------------------------------------

    def keyring(self) -> Keyring:
        """The OS keyring; an error when this inventory was opened without one."""
        if self._keyring_source is None:
            raise SecretStoreError(
                "this inventory was opened without access to the OS keyring",
                hint="this is a bug in tokenctl: please report it",
            )
        return self._keyring_source()

    def keys(self, *, version: int | None = None, fresh: bool = False) -> DataKeys | None:
        """The data keys, read from the keyring once; again when ``version`` is not among them.

        Another process may have rotated the key since they were read.
        """
        cached = self._keys
        if fresh or cached is None or (version is not None and version not in cached.versions):
            self._keys = read_data_keys(self.keyring(), self.key_ref)
        return self._keys

    def forget_keys(self, keys: DataKeys | None = None) -> None:
        """Use ``keys`` from now on (a rotation's result), or read them again when needed."""
        self._keys = keys

    def missing_key(self) -> DataKeyMissingError:
        """The error for sealed secrets whose data key the keyring no longer has."""
        return DataKeyMissingError(
            f"the OS keyring has no data key for this inventory (service tokenctl, entry "
            f"{self.key_ref}), so the secrets sealed with it cannot be read",
            hint="the keyring was reset, or the inventory comes from another machine or "
            "user: restore that keyring entry (docs/keyring.md, 'Moving an inventory'); "
            "or give those secrets up with `tokenctl key reset` and retrieve each token again",
        )

    def sealing_key(self, connection: sqlite3.Connection) -> tuple[int, bytes]:
        """Inside a write transaction: the version and key new secrets are sealed with.

        The version is the inventory's (``meta``), not whatever this process read from the
        keyring earlier: a rotation raises it before it re-seals, so nothing is sealed
        with a version it is about to drop. The first secret makes the key.
        """
        recorded = meta_value(connection, KEY_VERSION)
        if recorded is not None:
            version = int(recorded)
            keys = self.keys(version=version)
            if keys is not None and version in keys.versions:
                return version, keys.versions[version]
            if keys is not None and keys.newest > version:
                # A copy of this inventory rotated the key they share, or this file is a
                # backup from before a rotation: new secrets are sealed with the newest
                # version; each value under the lost one is unreadable until renewed.
                set_meta(connection, KEY_VERSION, str(keys.newest))
                return keys.newest, keys.versions[keys.newest]
            if sealed_count(connection):
                if keys is None:
                    raise self.missing_key()
                raise SecretStoreError(
                    f"the data key entry tokenctl/{self.key_ref} lacks key version {version}, "
                    "which this inventory seals with",
                    hint="restore that keyring entry from a backup (docs/keyring.md), or give "
                    "the secrets up with `tokenctl key reset`",
                )
            # Nothing is sealed: a new key loses nothing. A new version, too, so that no
            # value sealed under the old key could ever be taken for one of the new.
            return self._make_key(connection, version + 1)
        return self._make_key(connection, 1)

    def _make_key(self, connection: sqlite3.Connection, version: int) -> tuple[int, bytes]:
        keys = self.keys(fresh=True)
        if keys is not None and keys.newest >= version:
            # Written by a process killed before its transaction committed, or by a copy
            # of this inventory: adopt it, never replace it.
            version = keys.newest
        else:
            keys = DataKeys.generate(version) if keys is None else keys.with_version(version)
            self.keyring().set_text(self.key_ref, keys.to_entry())
            self._keys = keys
        set_meta(connection, KEY_VERSION, str(version))
        return version, keys.versions[version]

    def opening_key(self, version: int, what: str, name: str) -> bytes:
        """The key that opens a value sealed under ``version``, or the error that says why not."""
        keys = self.keys(version=version)
        if keys is None:
            raise self.missing_key()
        key = keys.versions.get(version)
        if key is None:
            raise SecretUnreadableError(
                f"the secrets of {what} were sealed with data key version {version}, which "
                f"the keyring entry tokenctl/{self.key_ref} does not hold (the key was rotated "
                "in a copy of this inventory, or the inventory and the keyring entry were "
                "restored from different times)",
                hint=RENEW_HINT.format(name=name),
            )
        return key

    # -- token rows ----------------------------------------------------------------------

    def write_token(
        self, connection: sqlite3.Connection, number: int, secrets: TokenSecrets
    ) -> None:
        """Seal ``secrets`` as the secrets of token ``number``, replacing what was there."""
        version, key = self.sealing_key(connection)
        connection.execute(_UPSERT_TOKEN, self._token_values(key, version, number, secrets))

    def _token_values(
        self, key: bytes, version: int, number: int, secrets: TokenSecrets
    ) -> tuple[object, ...]:
        """The parameters of ``_UPSERT_TOKEN``: each field sealed with its own nonce."""
        sealed = []
        for name in TOKEN_FIELDS:
            value = getattr(secrets, name)
            context = token_context(self.inventory_id, number, name, version)
            sealed.append(seal(key, value, context) if value else None)
        return (number, version, secrets.token_type, *sealed)

    @staticmethod
    def read_row_exists(connection: sqlite3.Connection, number: int) -> bool:
        """Whether token ``number`` has a sealed row (nothing is opened)."""
        row = connection.execute(
            "SELECT 1 FROM token_secrets WHERE number = ?", (number,)
        ).fetchone()
        return row is not None

    def read_token(self, connection: sqlite3.Connection, number: int) -> TokenSecrets | None:
        """The secrets of token ``number``, opened; ``None`` when none are sealed."""
        row = connection.execute(f"{_SELECT_TOKEN} WHERE s.number = ?", (number,)).fetchone()
        if row is None:
            return None
        return self._open_token(row)

    def _open_token(self, row: tuple[object, ...]) -> TokenSecrets:
        number, version, token_type, *sealed, name = row
        assert isinstance(number, int) and isinstance(version, int) and isinstance(name, str)
        what = f"token #{number} {name!r}"
        key = self.opening_key(version, what, name)
        values: dict[str, str] = {}
        for field_name, value in zip(TOKEN_FIELDS, sealed, strict=True):
            if value is None:
                continue
            assert isinstance(value, bytes)
            context = token_context(self.inventory_id, number, field_name, version)
            try:
                values[field_name] = unseal(key, value, context)
            except UnsealError as error:
                raise SecretUnreadableError(
                    f"the sealed {field_name.replace('_', ' ')} of {what} cannot be opened "
                    f"with this inventory's data key ({error})",
                    hint=RENEW_HINT.format(name=name),
                ) from None
        return TokenSecrets(
            access_token=values.get("access_token"),
            refresh_token=values.get("refresh_token"),
            id_token=values.get("id_token"),
            pass_code=values.get("pass_code"),
            token_type=token_type if isinstance(token_type, str) else None,
        )

    # -- client rows ---------------------------------------------------------------------

    def write_client(
        self,
        connection: sqlite3.Connection,
        definition: str,
        client_id: str,
        secret: str,
        *,
        replace: bool = True,
    ) -> None:
        """Seal the client secret of ``client_id`` in ``definition``.

        ``replace=False`` keeps a secret already sealed (a legacy entry moved in while
        ``definitions configure`` stored a newer one).
        """
        version, key = self.sealing_key(connection)
        sealed = seal(
            key, secret, client_context(self.inventory_id, definition, client_id, version)
        )
        verb = "INSERT OR REPLACE" if replace else "INSERT OR IGNORE"
        connection.execute(
            f"{verb} INTO client_secrets (definition, client_id, key_version, client_secret) "
            "VALUES (?, ?, ?, ?)",
            (definition, client_id, version, sealed),
        )

    def read_client(
        self, connection: sqlite3.Connection, definition: str, client_id: str
    ) -> str | None:
        """The client secret of ``client_id`` in ``definition``; ``None`` when none is sealed."""
        row = connection.execute(
            "SELECT key_version, client_secret FROM client_secrets "
            "WHERE definition = ? AND client_id = ?",
            (definition, client_id),
        ).fetchone()
        if row is None:
            return None
        version, sealed = row
        what = f"the client {client_id!r} of definition {definition!r}"
        key = self.opening_key(version, what, definition)
        try:
            return unseal(
                key, sealed, client_context(self.inventory_id, definition, client_id, version)
            )
        except UnsealError as error:
            raise SecretUnreadableError(
                f"the sealed client secret of {what} cannot be opened with this inventory's "
                f"data key ({error})",
                hint=f"store it again: `tokenctl definitions configure {definition} "
                f"--client-id {client_id} --client-secret-stdin`",
            ) from None

    # -- rotation ------------------------------------------------------------------------

    def reseal_tokens(
        self, connection: sqlite3.Connection, version: int, after: int, limit: int
    ) -> tuple[int | None, int, list[str]]:
        """Re-seal under ``version`` up to ``limit`` token rows numbered above ``after``.

        Returns the last number looked at (``None``: no row was left), how many rows
        moved, and the names of those that do not open: those stay as they are, since
        they cannot be moved and dropping their version makes them no less readable.
        """
        key = self.opening_key(version, "the rotation's new key", "NAME")
        rows = connection.execute(
            f"{_SELECT_TOKEN} WHERE s.key_version != ? AND s.number > ? ORDER BY s.number LIMIT ?",
            (version, after, limit),
        ).fetchall()
        moved, stuck = 0, []
        for row in rows:
            number = row[0]
            try:
                secrets = self._open_token(row)
            except SecretStoreError:
                stuck.append(str(row[-1]))
                continue
            connection.execute(_UPSERT_TOKEN, self._token_values(key, version, number, secrets))
            moved += 1
        return (rows[-1][0] if rows else None), moved, stuck

    def reseal_clients(self, connection: sqlite3.Connection, version: int) -> tuple[int, list[str]]:
        """Re-seal every client secret not under ``version`` (there are few)."""
        key = self.opening_key(version, "the rotation's new key", "NAME")
        clients = connection.execute(
            "SELECT definition, client_id FROM client_secrets WHERE key_version != ?", (version,)
        ).fetchall()
        moved, stuck = 0, []
        for definition, client_id in clients:
            try:
                secret = self.read_client(connection, definition, client_id)
            except SecretStoreError:
                stuck.append(f"{definition}/{client_id}")
                continue
            assert secret is not None
            context = client_context(self.inventory_id, definition, client_id, version)
            connection.execute(
                "UPDATE client_secrets SET key_version = ?, client_secret = ? "
                "WHERE definition = ? AND client_id = ?",
                (version, seal(key, secret, context), definition, client_id),
            )
            moved += 1
        return moved, stuck
