"""SQLite token inventory: WAL, immediate transactions, busy timeout, versioned schema."""

from __future__ import annotations

import functools
import json
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import fields
from datetime import datetime
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from tokenctl.errors import ConflictError, InventoryError, NotFoundError
from tokenctl.fsutil import ensure_private_file
from tokenctl.inventory.lookup import SCHEMA_VERSION, find_row, inventory_failure, is_damage
from tokenctl.models import Actor, HistoryEvent, LifecycleState, Token, TokenChanges
from tokenctl.timeutil import from_iso, to_iso

BUSY_TIMEOUT_MS = 30_000

_SCHEMA_V1 = """
CREATE TABLE tokens (
    number INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    authentication_code TEXT NOT NULL UNIQUE,
    definition TEXT NOT NULL,
    secret_ref TEXT NOT NULL UNIQUE,
    description TEXT,
    identifier TEXT,
    account TEXT,
    state TEXT NOT NULL CHECK (state IN ('effective', 'not_effective')),
    expires_at TEXT,
    refresh_expires_at TEXT,
    granted_scopes TEXT,
    secret_set_at TEXT,
    invalid_at TEXT,
    invalid_reason TEXT,
    attributes TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_unit TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    updated_unit TEXT NOT NULL
);
CREATE INDEX tokens_definition ON tokens (definition);
CREATE TABLE history (
    event_id INTEGER PRIMARY KEY AUTOINCREMENT,
    token_number INTEGER NOT NULL,
    token_name TEXT NOT NULL,
    at TEXT NOT NULL,
    event TEXT NOT NULL,
    user TEXT NOT NULL,
    unit TEXT NOT NULL,
    outcome TEXT NOT NULL,
    detail TEXT
);
CREATE INDEX history_token ON history (token_number, event_id);
"""


def _run_statements(script: str) -> Callable[[sqlite3.Connection], None]:
    """A migration step made of plain statements.

    ``executescript`` would COMMIT the surrounding transaction first, so the statements
    are run one by one inside the caller's transaction instead.
    """

    def migrate(connection: sqlite3.Connection) -> None:
        for statement in script.split(";"):
            if statement.strip():
                connection.execute(statement)

    return migrate


# Version 2: what the OAuth login and refresh record (no secrets, only facts about them).
_SCHEMA_V2 = """
ALTER TABLE tokens ADD COLUMN has_refresh_token INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tokens ADD COLUMN refreshed_at TEXT;
ALTER TABLE tokens ADD COLUMN probed_at TEXT;
ALTER TABLE tokens ADD COLUMN probe_result TEXT
"""

# Version 3: whether the grant came with an id token, the proof of the `openid` scope
# (as a refresh token is of `offline_access`) when the provider leaves it out of `scope`.
# Older rows count as having one when a subject was recorded at their login: that came
# from the id token or the OpenID Connect userinfo endpoint, so the grant is an OpenID one.
_SCHEMA_V3 = """
ALTER TABLE tokens ADD COLUMN has_id_token INTEGER NOT NULL DEFAULT 0;
UPDATE tokens SET has_id_token = 1 WHERE attributes LIKE '%"subject": %'
"""

#: Each entry upgrades the schema by one version; append, never edit a released one.
MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (
    _run_statements(_SCHEMA_V1),
    _run_statements(_SCHEMA_V2),
    _run_statements(_SCHEMA_V3),
)
if len(MIGRATIONS) != SCHEMA_VERSION:  # pragma: no cover - fails on the first import
    raise RuntimeError("a migration was added: raise lookup.SCHEMA_VERSION to match")

#: The ``tokens`` table's columns: the fields of :class:`Token`, in their order (the
#: migrations above create them; `_token_from_row` decodes them in this order).
_COLUMNS = tuple(item.name for item in fields(Token))
#: Fields of :class:`Token` that :meth:`SqliteInventory.update` may change (a dict is a
#: dict at run time: the names are checked there too).
MUTABLE_FIELDS = frozenset(TokenChanges.__annotations__)
#: Columns holding a moment, stored as ISO 8601 text.
_TIME_COLUMNS = frozenset(
    item.name for item in fields(Token) if str(item.type).startswith(("datetime", "datetime."))
)
if not set(_COLUMNS) >= MUTABLE_FIELDS or "expires_at" not in _TIME_COLUMNS:  # pragma: no cover
    raise RuntimeError("TokenChanges or the time columns do not match Token's fields")
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM tokens"  # noqa: S608 - fixed column list


def _encode(column: str, value: Any) -> Any:
    if column in _TIME_COLUMNS:
        return to_iso(value)
    if column == "granted_scopes":
        return None if value is None else json.dumps(list(value))
    if column == "attributes":
        return json.dumps(dict(value), sort_keys=True)
    if column == "state":
        return LifecycleState(value).value
    if column in ("has_refresh_token", "has_id_token"):
        return int(bool(value))
    return value


def _token_from_row(row: Sequence[Any]) -> Token:
    # Hot: `list` decodes every token. Naming each column, and skipping the decoders for
    # NULL and "{}", is ~1.5x faster than a dict of the columns. A column added to
    # Token (so to _COLUMNS) but not here fails loudly.
    (
        number,
        name,
        authentication_code,
        definition,
        secret_ref,
        description,
        identifier,
        account,
        state,
        expires_at,
        refresh_expires_at,
        granted_scopes,
        secret_set_at,
        invalid_at,
        invalid_reason,
        attributes,
        created_at,
        created_by,
        created_unit,
        updated_at,
        updated_by,
        updated_unit,
        has_refresh_token,
        refreshed_at,
        probed_at,
        probe_result,
        has_id_token,
    ) = row
    return Token(
        number=number,
        name=name,
        authentication_code=authentication_code,
        definition=definition,
        secret_ref=secret_ref,
        description=description,
        identifier=identifier,
        account=account,
        state=LifecycleState(state),
        expires_at=None if expires_at is None else from_iso(expires_at),
        refresh_expires_at=None if refresh_expires_at is None else from_iso(refresh_expires_at),
        granted_scopes=None if granted_scopes is None else tuple(json.loads(granted_scopes)),
        secret_set_at=None if secret_set_at is None else from_iso(secret_set_at),
        invalid_at=None if invalid_at is None else from_iso(invalid_at),
        invalid_reason=invalid_reason,
        attributes={} if attributes == "{}" else json.loads(attributes),
        created_at=None if created_at is None else from_iso(created_at),
        created_by=created_by,
        created_unit=created_unit,
        updated_at=None if updated_at is None else from_iso(updated_at),
        updated_by=updated_by,
        updated_unit=updated_unit,
        has_refresh_token=bool(has_refresh_token),
        refreshed_at=None if refreshed_at is None else from_iso(refreshed_at),
        probed_at=None if probed_at is None else from_iso(probed_at),
        probe_result=probe_result,
        has_id_token=bool(has_id_token),
    )


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _reports_failure(
    method: Callable[Concatenate[SqliteInventory, _P], _R],
) -> Callable[Concatenate[SqliteInventory, _P], _R]:
    """Turn SQLite's own errors in ``method`` into an :class:`InventoryError` naming the file.

    Every statement on the inventory runs inside one of these methods, so a damaged page
    (found by whichever statement first reads it) is reported the same way everywhere.
    """

    def reporting(self: SqliteInventory, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.DatabaseError as error:
            raise inventory_failure(self.path, error) from None

    functools.update_wrapper(reporting, method)  # in place: the name and docstring stay
    return reporting


class SqliteInventory:
    """The default :class:`~tokenctl.inventory.Inventory`, one SQLite file per home."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            ensure_private_file(path)
            # One thread at a time, not always the one that opened it: `renew --all`
            # hands all inventory work to one worker thread, off its event loop.
            self._connection = sqlite3.connect(
                path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
            )
            self._connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            self._connection.execute("PRAGMA journal_mode = WAL")
            self._connection.execute("PRAGMA synchronous = FULL")
            self._migrate()
        except (sqlite3.DatabaseError, OSError) as error:
            self._close_quietly()
            if isinstance(error, sqlite3.DatabaseError) and is_damage(error):
                raise inventory_failure(path, error) from None
            raise InventoryError(
                f"cannot open the token inventory {path}: {error}",
                hint="run `tokenctl doctor`; restore the file from a backup if it is damaged",
            ) from None

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """An IMMEDIATE transaction: takes the write lock up front so no update is lost."""
        connection = self._connection
        try:
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield connection
            except BaseException:
                # SQLite may already have rolled back (it does on some errors, a damaged
                # page among them); the original error is the one to report.
                if connection.in_transaction:
                    with suppress(sqlite3.Error):
                        connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")
        except sqlite3.OperationalError as error:
            raise InventoryError(
                f"the token inventory {self.path} refused a change: {error}",
                hint="another process may hold it for long, or the file is read-only; "
                "run `tokenctl doctor`",
            ) from None

    def _migrate(self) -> None:
        version = self._connection.execute("PRAGMA user_version").fetchone()[0]
        if version == SCHEMA_VERSION:
            return
        if version > SCHEMA_VERSION:
            raise InventoryError(
                f"the inventory {self.path} has schema version {version}, newer than this "
                f"tokenctl understands ({SCHEMA_VERSION})",
                hint="upgrade tokenctl",
            )
        with self._transaction() as connection:
            # Re-read under the write lock: another process may have migrated meanwhile.
            version = connection.execute("PRAGMA user_version").fetchone()[0]
            for migration in MIGRATIONS[version:]:
                migration(connection)
            connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    # -- reads ---------------------------------------------------------------------------

    @_reports_failure
    def resolve(self, ref: str) -> Token:
        """Find a token by number, name or authentication code."""
        row = find_row(self._connection, _SELECT, ref)
        if row is None:
            raise NotFoundError(
                f"no token {ref!r}",
                hint="give a number, name or authentication code from `tokenctl list`",
            )
        return _token_from_row(row)

    @_reports_failure
    def get(self, number: int) -> Token:
        """The token with this number as it is now; ``NotFoundError`` once it is gone."""
        row = self._connection.execute(f"{_SELECT} WHERE number = ?", (number,)).fetchone()
        if row is None:
            raise NotFoundError(f"token #{number} no longer exists")
        return _token_from_row(row)

    @_reports_failure
    def tokens(self) -> list[Token]:
        """Every token, ordered by number."""
        rows = self._connection.execute(f"{_SELECT} ORDER BY number").fetchall()
        return [_token_from_row(row) for row in rows]

    @_reports_failure
    def history(self, number: int, limit: int | None = None) -> list[HistoryEvent]:
        """Events of one token number, newest first."""
        rows = self._connection.execute(
            "SELECT event_id, token_number, token_name, at, event, user, unit, outcome, detail"
            " FROM history WHERE token_number = ? ORDER BY event_id DESC LIMIT ?",
            (number, -1 if limit is None else limit),
        ).fetchall()
        return [
            HistoryEvent(
                event_id=row[0],
                token_number=row[1],
                token_name=row[2],
                at=from_iso(row[3]) or datetime.min,
                event=row[4],
                user=row[5],
                unit=row[6],
                outcome=row[7],
                detail=row[8],
            )
            for row in rows
        ]

    @_reports_failure
    def names_using_definition(self, definition: str) -> Sequence[str]:
        """Names of the tokens whose definition is ``definition``."""
        rows = self._connection.execute(
            "SELECT name FROM tokens WHERE definition = ? ORDER BY number", (definition,)
        ).fetchall()
        return [row[0] for row in rows]

    # -- writes --------------------------------------------------------------------------

    @_reports_failure
    def add(self, token: Token, actor: Actor, now: datetime) -> Token:
        """Insert a new record (its number is assigned here) and a ``created`` event."""
        values = {column: getattr(token, column) for column in _COLUMNS if column != "number"}
        values.update(
            created_at=now,
            created_by=actor.user,
            created_unit=actor.unit,
            updated_at=now,
            updated_by=actor.user,
            updated_unit=actor.unit,
        )
        columns = list(values)
        with self._transaction() as connection:
            self._refuse_name_code_clash(connection, token.name, token.authentication_code)
            try:
                cursor = connection.execute(
                    f"INSERT INTO tokens ({', '.join(columns)}) "  # noqa: S608 - fixed columns
                    f"VALUES ({', '.join('?' for _ in columns)})",
                    [_encode(column, values[column]) for column in columns],
                )
            except sqlite3.IntegrityError as error:
                raise self._conflict(error, token) from None
            number = cursor.lastrowid
            assert number is not None
            self._insert_event(connection, number, token.name, actor, now, "created", "ok", None)
            row = connection.execute(f"{_SELECT} WHERE number = ?", (number,)).fetchone()
        return _token_from_row(row)

    def update(
        self,
        number: int,
        changes: TokenChanges,
        actor: Actor,
        now: datetime,
        *,
        event: str,
        outcome: str = "ok",
        detail: str | None = None,
    ) -> Token:
        """Apply ``changes`` and append one history event, in one transaction."""
        token, _ = self.update_if(
            number,
            lambda _current: changes,
            actor,
            now,
            event=event,
            outcome=outcome,
            detail=detail,
        )
        return token

    @_reports_failure
    def update_if(
        self,
        number: int,
        decide: Callable[[Token], TokenChanges | None],
        actor: Actor,
        now: datetime,
        *,
        event: str,
        outcome: str = "ok",
        detail: str | None = None,
    ) -> tuple[Token, bool]:
        """Read the record under the write lock, let ``decide`` choose the changes, apply them.

        ``decide`` sees the current record, so a read-modify-write cannot lose a concurrent
        update. It returns ``None`` to leave the record (and history) untouched.
        """
        with self._transaction() as connection:
            row = connection.execute(f"{_SELECT} WHERE number = ?", (number,)).fetchone()
            if row is None:
                raise NotFoundError(f"token #{number} no longer exists")
            current = _token_from_row(row)
            changes = decide(current)
            if changes is None:
                return current, False
            unknown = set(changes) - MUTABLE_FIELDS
            if unknown:
                raise ValueError(f"fields cannot be changed: {sorted(unknown)}")
            assignments = dict(changes)
            assignments.update(updated_at=now, updated_by=actor.user, updated_unit=actor.unit)
            if "name" in changes:
                self._refuse_name_code_clash(connection, changes["name"], None, number)
            try:
                connection.execute(
                    f"UPDATE tokens SET {', '.join(f'{c} = ?' for c in assignments)} "  # noqa: S608
                    "WHERE number = ?",
                    [*(_encode(c, v) for c, v in assignments.items()), number],
                )
            except sqlite3.IntegrityError as error:
                raise self._conflict(error, current) from None
            row = connection.execute(f"{_SELECT} WHERE number = ?", (number,)).fetchone()
            token = _token_from_row(row)
            self._insert_event(connection, number, token.name, actor, now, event, outcome, detail)
        return token, True

    @_reports_failure
    def delete(self, number: int, actor: Actor, now: datetime, *, detail: str | None) -> None:
        """Remove the record; the history keeps a ``deleted`` event."""
        with self._transaction() as connection:
            row = connection.execute(
                "SELECT name FROM tokens WHERE number = ?", (number,)
            ).fetchone()
            if row is None:
                raise NotFoundError(f"token #{number} no longer exists")
            connection.execute("DELETE FROM tokens WHERE number = ?", (number,))
            self._insert_event(connection, number, row[0], actor, now, "deleted", "ok", detail)

    @_reports_failure
    def record_event(
        self,
        token: Token,
        actor: Actor,
        now: datetime,
        *,
        event: str,
        outcome: str,
        detail: str | None = None,
    ) -> None:
        """Append a history event without changing the record."""
        with self._transaction() as connection:
            self._insert_event(
                connection, token.number, token.name, actor, now, event, outcome, detail
            )

    @staticmethod
    def _insert_event(
        connection: sqlite3.Connection,
        number: int,
        name: str,
        actor: Actor,
        now: datetime,
        event: str,
        outcome: str,
        detail: str | None,
    ) -> None:
        connection.execute(
            "INSERT INTO history (token_number, token_name, at, event, user, unit, outcome, detail)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (number, name, to_iso(now), event, actor.user, actor.unit, outcome, detail),
        )

    @staticmethod
    def _refuse_name_code_clash(
        connection: sqlite3.Connection, name: str, code: str | None, number: int | None = None
    ) -> None:
        """Refuse a name or code that would shadow the other in the shared look-up space."""
        other = -1 if number is None else number
        clash = connection.execute(
            "SELECT name FROM tokens WHERE authentication_code = ? AND number != ?", (name, other)
        ).fetchone()
        if clash is not None:
            raise ConflictError(f"name {name!r} is the authentication code of token {clash[0]!r}")
        if code is not None:
            clash = connection.execute(
                "SELECT name FROM tokens WHERE name = ? AND number != ?", (code, other)
            ).fetchone()
            if clash is not None:
                raise ConflictError(f"authentication code {code!r} is the name of another token")

    @staticmethod
    def _conflict(error: sqlite3.IntegrityError, token: Token) -> ConflictError:
        text = str(error)
        if "tokens.name" in text:
            return ConflictError(
                f"a token named {token.name!r} already exists",
                hint="choose another name, or `tokenctl delete` the old token first",
            )
        if "tokens.authentication_code" in text:
            return ConflictError(
                f"authentication code {token.authentication_code!r} is already in use",
                hint="choose another code, or leave --code out to have one generated",
            )
        return ConflictError(f"the inventory refused the change: {text}")

    # -- maintenance ---------------------------------------------------------------------

    @_reports_failure
    def check_integrity(self) -> list[str]:
        """Problems found in the store; empty when it is sound."""
        problems = [
            row[0]
            for row in self._connection.execute("PRAGMA integrity_check").fetchall()
            if row[0] != "ok"
        ]
        version = self._connection.execute("PRAGMA user_version").fetchone()[0]
        if version != SCHEMA_VERSION:
            problems.append(f"schema version {version}, expected {SCHEMA_VERSION}")
        return problems

    @_reports_failure
    def describe(self) -> Mapping[str, Any]:
        """Facts for ``doctor``: location, schema version, counts."""
        connection = self._connection
        return {
            "path": str(self.path),
            "schema_version": connection.execute("PRAGMA user_version").fetchone()[0],
            "journal_mode": connection.execute("PRAGMA journal_mode").fetchone()[0],
            "tokens": connection.execute("SELECT count(*) FROM tokens").fetchone()[0],
            "history_events": connection.execute("SELECT count(*) FROM history").fetchone()[0],
        }

    def close(self) -> None:
        """Release the connection."""
        self._connection.close()

    def _close_quietly(self) -> None:
        connection = getattr(self, "_connection", None)
        if connection is not None:
            with suppress(sqlite3.Error):
                connection.close()
