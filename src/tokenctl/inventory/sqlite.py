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
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

from tokenctl.errors import (
    ConflictError,
    InventoryError,
    NewerDataKeyError,
    NotFoundError,
    SecretStoreError,
)
from tokenctl.fsutil import FileLock, ensure_private_file
from tokenctl.inventory import UpdateThroughUpdateIf
from tokenctl.inventory.lookup import SCHEMA_VERSION, find_row, inventory_failure, is_damage
from tokenctl.inventory.sealed import (
    INVENTORY_ID,
    KEY_VERSION,
    SealedSecrets,
    meta_value,
    sealed_count,
    set_meta,
)
from tokenctl.models import (
    TEAM_STORE_ONLY,
    Actor,
    HistoryEvent,
    LifecycleState,
    NoticeMark,
    Token,
    TokenCall,
    TokenChanges,
    TokenSecrets,
)
from tokenctl.secrets import KEYRING_SERVICE, Keyring, client_secret_ref, parse_entry
from tokenctl.secrets.sealing import TOKEN_FIELDS
from tokenctl.timeutil import from_iso, to_iso

if TYPE_CHECKING:  # made only by the key commands (see inventory/key_reports.py)
    from tokenctl.inventory import RefreshLease
    from tokenctl.inventory.key_reports import RotationResult, SecretSummary

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

# Version 4: secrets sealed in the inventory under one data key (inventory/sealed.py).
# The tokens table is rebuilt because `secret_ref` (the per-token keyring entry of 0.x,
# NOT NULL) becomes `legacy_secret_ref`, NULL once its entry has been moved in. Numbers
# are never reused (they are part of every sealed value's associated data), so the
# AUTOINCREMENT counter is carried over.
_TOKENS_V4 = """
CREATE TABLE tokens_v4 (
    number INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    authentication_code TEXT NOT NULL UNIQUE,
    definition TEXT NOT NULL,
    legacy_secret_ref TEXT UNIQUE,
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
    updated_unit TEXT NOT NULL,
    has_refresh_token INTEGER NOT NULL DEFAULT 0,
    refreshed_at TEXT,
    probed_at TEXT,
    probe_result TEXT,
    has_id_token INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE token_secrets (
    number INTEGER PRIMARY KEY,
    key_version INTEGER NOT NULL,
    token_type TEXT,
    access_token BLOB,
    refresh_token BLOB,
    id_token BLOB,
    pass_code BLOB
);
CREATE TABLE client_secrets (
    definition TEXT NOT NULL,
    client_id TEXT NOT NULL,
    key_version INTEGER NOT NULL,
    client_secret BLOB NOT NULL,
    PRIMARY KEY (definition, client_id)
)
"""


def _schema_v4(connection: sqlite3.Connection) -> None:
    import uuid

    from tokenctl.inventory.sealed import INVENTORY_ID, set_meta

    counter = connection.execute("SELECT seq FROM sqlite_sequence WHERE name = 'tokens'").fetchone()
    _run_statements(_TOKENS_V4)(connection)
    kept = [column for column in _COLUMNS if column != "legacy_secret_ref"]
    connection.execute(
        f"INSERT INTO tokens_v4 (legacy_secret_ref, {', '.join(kept)}) "  # noqa: S608 - fixed
        f"SELECT secret_ref, {', '.join(kept)} FROM tokens"
    )
    connection.execute("DROP TABLE tokens")
    connection.execute("ALTER TABLE tokens_v4 RENAME TO tokens")
    connection.execute("CREATE INDEX tokens_definition ON tokens (definition)")
    if counter is not None:
        connection.execute("DELETE FROM sqlite_sequence WHERE name = 'tokens'")
        connection.execute(
            "INSERT INTO sqlite_sequence (name, seq) VALUES ('tokens', ?)", (counter[0],)
        )
    set_meta(connection, INVENTORY_ID, uuid.uuid4().hex)


#: Version 5: the token-endpoint calls counted against a definition's limits.
_SCHEMA_V5 = """
CREATE TABLE token_calls (budget TEXT NOT NULL, at TEXT NOT NULL, token INTEGER);
CREATE INDEX token_calls_budget ON token_calls (budget, at)
"""


#: Version 6: the last webhook notice sent about each token, per webhook and channel
#: (``check`` and ``renew --all`` notify a change of state once, not on every run).
_SCHEMA_V6 = """
CREATE TABLE notices (
    token INTEGER NOT NULL,
    key TEXT NOT NULL,
    state TEXT NOT NULL,
    at TEXT NOT NULL,
    PRIMARY KEY (token, key)
)
"""

#: The reserved definition name under which webhook signing secrets are sealed, as
#: client secrets are: so ``key rotate``, ``key status --verify`` and ``key reset`` cover
#: them. No definition can have it (``@`` is outside NAME_PATTERN).
WEBHOOK_SECRETS = "@webhook"


def _call_at(moment: datetime) -> str:
    """A token call's time as stored: ISO 8601 UTC, so that text order is time order."""
    text = to_iso(moment)
    assert text is not None
    return text


def _call_time(text: str) -> datetime:
    moment = from_iso(text)
    assert moment is not None
    return moment


#: Each entry upgrades the schema by one version; append, never edit a released one.
MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (
    _run_statements(_SCHEMA_V1),
    _run_statements(_SCHEMA_V2),
    _run_statements(_SCHEMA_V3),
    _schema_v4,
    _run_statements(_SCHEMA_V5),
    _run_statements(_SCHEMA_V6),
)
if len(MIGRATIONS) != SCHEMA_VERSION:  # pragma: no cover - fails on the first import
    raise RuntimeError("a migration was added: raise lookup.SCHEMA_VERSION to match")

#: The ``tokens`` table's columns: the fields of :class:`Token`, in their order (the
#: migrations above create them; `_token_from_row` decodes them in this order).
_COLUMNS = tuple(item.name for item in fields(Token) if item.name not in TEAM_STORE_ONLY)
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
        legacy_secret_ref,
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
        legacy_secret_ref=legacy_secret_ref,
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


class FileLease:
    """:class:`~tokenctl.inventory.RefreshLease` on one machine: an inter-process file lock."""

    #: A lock is tried again this often (``renew --all`` polls it on its event loop).
    poll_seconds = 0.05
    #: A system call that never waits: fine on an event loop.
    remote = False

    def __init__(self, lock_path: Path) -> None:
        self.lock = FileLock(lock_path)

    def try_acquire(self) -> bool:
        """Take the lock if no process holds it now; never waits."""
        return self.lock.try_acquire()

    def release(self) -> None:
        """Let the next process have the lock."""
        self.lock.release()


def _holds_secret(secrets: TokenSecrets) -> bool:
    return any(getattr(secrets, name) for name in TOKEN_FIELDS)


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


class SqliteInventory(UpdateThroughUpdateIf):
    """The default :class:`~tokenctl.inventory.Inventory`, one SQLite file per home.

    Records, history and the secrets sealed under the inventory's data key, which
    ``keyring`` (called on the first secret read or written, never otherwise) holds.
    """

    remote = False  # one file on this machine
    #: Rows re-sealed per transaction by :meth:`rotate_key`: each batch commits, so an
    #: interrupted rotation keeps what it did, and other processes wait only that long.
    ROTATION_BATCH = 200

    def __init__(
        self,
        path: Path,
        keyring: Callable[[], Keyring] | None = None,
        *,
        locks_dir: Path | None = None,
    ) -> None:
        self.path = path
        #: Whether :meth:`group_commit` runs; whether SQLite rolled its group back; the
        #: error that ended the group's changes (every change of it then fails).
        self._grouping = False
        self._group_lost = False
        self._group_failure: InventoryError | None = None
        #: Where the per-token refresh locks are (``Paths.locks_dir``; beside the file).
        self.locks_dir = path.parent / "locks" if locks_dir is None else locks_dir
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
            inventory_id = meta_value(self._connection, INVENTORY_ID)
        except (sqlite3.DatabaseError, OSError) as error:
            self._close_quietly()
            if isinstance(error, sqlite3.DatabaseError) and is_damage(error):
                raise inventory_failure(path, error) from None
            raise InventoryError(
                f"cannot open the token inventory {path}: {error}",
                hint="run `tokenctl doctor`; restore the file from a backup if it is damaged",
            ) from None
        if inventory_id is None:
            self._close_quietly()
            raise InventoryError(
                f"the token inventory {path} has no inventory id",
                hint="run `tokenctl doctor`; restore the file from a backup if it is damaged",
            )
        self.sealed = SealedSecrets(inventory_id, keyring)
        #: Whether the legacy keyring entries were looked for in this process (once).
        self._legacy_moved = False

    @contextmanager
    def _transaction(self, *, groupable: bool = False) -> Iterator[sqlite3.Connection]:
        """An IMMEDIATE transaction: takes the write lock up front so no update is lost.

        Inside :meth:`group_commit`, a ``groupable`` change is a savepoint of the group's
        one transaction instead (atomic on its own, durable when the group commits); any
        other change first commits what the group has done so far, then commits itself at
        once, because code after it (a keyring entry deleted, a key written) relies on it.
        """
        if self._grouping:
            if groupable:
                with self._grouped_change() as connection:
                    yield connection
                return
            self._commit_group()
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
            raise self._refused(error) from None

    def _refused(self, error: sqlite3.OperationalError) -> InventoryError:
        return InventoryError(
            f"the token inventory {self.path} refused a change: {error}",
            hint="another process may hold it for long, or the file is read-only; "
            "run `tokenctl doctor`",
        )

    @contextmanager
    def _grouped_change(self) -> Iterator[sqlite3.Connection]:
        """One change of a group: a savepoint in the group's transaction (begun by the first)."""
        connection = self._connection
        try:
            if not connection.in_transaction:
                connection.execute("BEGIN IMMEDIATE")
            connection.execute("SAVEPOINT change")
            try:
                yield connection
            except BaseException:
                if connection.in_transaction:
                    with suppress(sqlite3.Error):
                        connection.execute("ROLLBACK TO change")
                        connection.execute("RELEASE change")
                else:
                    # SQLite rolled back the whole transaction: the group's earlier
                    # changes are gone too, though their calls returned.
                    self._group_lost = True
                raise
            connection.execute("RELEASE change")
        except sqlite3.OperationalError as error:
            raise self._refused(error) from None

    def _commit_group(self) -> None:
        """Make what the current group changed durable (one commit, one sync for all).

        A group whose changes were lost (SQLite rolled them back, or this commit failed)
        stays failed: every later commit of it raises the same error, so the group's end
        fails every change it holds, even those whose calls returned.
        """
        connection = self._connection
        if self._group_failure is None and self._group_lost:
            self._group_failure = InventoryError(
                f"the token inventory {self.path} rolled back a group of changes after an error",
                hint="run the command again; run `tokenctl doctor` if it happens again",
            )
        if self._group_failure is None and connection.in_transaction:
            try:
                connection.execute("COMMIT")
            except sqlite3.OperationalError as error:
                self._group_failure = self._refused(error)
        if self._group_failure is not None:
            if connection.in_transaction:
                with suppress(sqlite3.Error):
                    connection.execute("ROLLBACK")
            raise self._group_failure

    @contextmanager
    def group_commit(self) -> Iterator[None]:
        """Record changes made meanwhile commit together when it ends (see the protocol)."""
        if self._grouping:  # already in one: the outer group commits
            yield
            return
        self._grouping = True
        self._group_lost = False
        self._group_failure = None
        try:
            yield
            self._commit_group()
        except BaseException:
            if self._connection.in_transaction:
                with suppress(sqlite3.Error):
                    self._connection.execute("ROLLBACK")
            raise
        finally:
            self._grouping = False

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
    def add(
        self, token: Token, actor: Actor, now: datetime, *, secrets: TokenSecrets | None = None
    ) -> Token:
        """Insert a new record (its number is assigned here) and a ``created`` event.

        ``secrets`` are sealed in the same transaction: both are stored, or neither.
        """
        if secrets is not None:
            self._prepare_sealing()
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
            if secrets is not None:
                self.sealed.write_token(connection, number, secrets)
            self._insert_event(connection, number, token.name, actor, now, "created", "ok", None)
            row = connection.execute(f"{_SELECT} WHERE number = ?", (number,)).fetchone()
        return _token_from_row(row)

    @_reports_failure
    def import_token(
        self,
        token: Token,
        secrets: TokenSecrets | None,
        history: Sequence[HistoryEvent],
        *,
        replace: bool = False,
    ) -> Token:
        """Insert ``token`` with its own number, code, log information and ``history``.

        One transaction: the record, its sealed ``secrets`` and its history are stored
        together, or nothing is. SQLite raises the AUTOINCREMENT counter past an explicit
        number itself, so the number is never handed out again. See
        :meth:`tokenctl.inventory.Inventory.import_token`.
        """
        if token.number < 1:
            raise ValueError(f"token number {token.number} is not a token number")
        if secrets is not None:
            self._prepare_sealing()
        values = {column: getattr(token, column) for column in _COLUMNS}
        values["legacy_secret_ref"] = None
        columns = list(values)
        number = token.number
        with self._transaction() as connection:
            used = connection.execute(
                "SELECT (SELECT count(*) FROM tokens WHERE number = ?) + "
                "(SELECT count(*) FROM history WHERE token_number = ?)",
                (number, number),
            ).fetchone()[0]
            if used and not replace:
                raise ConflictError(
                    f"token number {number} is already used in the inventory {self.path}",
                    hint="compare the two with `tokenctl store copy --dry-run`; "
                    "`--overwrite` replaces it",
                )
            for table, column in (
                ("tokens", "number"),
                ("token_secrets", "number"),
                ("history", "token_number"),
            ):
                connection.execute(f"DELETE FROM {table} WHERE {column} = ?", (number,))  # noqa: S608
            self._refuse_name_code_clash(connection, token.name, token.authentication_code, number)
            try:
                connection.execute(
                    f"INSERT INTO tokens ({', '.join(columns)}) "  # noqa: S608 - fixed columns
                    f"VALUES ({', '.join('?' for _ in columns)})",
                    [_encode(column, values[column]) for column in columns],
                )
            except sqlite3.IntegrityError as error:
                raise self._conflict(error, token) from None
            if secrets is not None:
                self.sealed.write_token(connection, number, secrets)
            for event in reversed(history):  # oldest first: the event ids count up
                self._insert_event(
                    connection,
                    number,
                    event.token_name,
                    event.actor,
                    event.at,
                    event.event,
                    event.outcome,
                    event.detail,
                )
            row = connection.execute(f"{_SELECT} WHERE number = ?", (number,)).fetchone()
        return _token_from_row(row)

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
        secrets: TokenSecrets | None = None,
    ) -> tuple[Token, bool]:
        """Read the record under the write lock, let ``decide`` choose the changes, apply them.

        ``decide`` sees the current record, so a read-modify-write cannot lose a concurrent
        update. It returns ``None`` to leave the record (and history) untouched. When it
        returns changes, ``secrets`` replace the token's sealed secrets in the same
        transaction: a rotated refresh token and the record that says so commit together.
        """
        if secrets is not None:
            self._prepare_sealing()
        with self._transaction(groupable=True) as connection:
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
            if secrets is not None:
                self.sealed.write_token(connection, number, secrets)
            row = connection.execute(f"{_SELECT} WHERE number = ?", (number,)).fetchone()
            token = _token_from_row(row)
            self._insert_event(connection, number, token.name, actor, now, event, outcome, detail)
        return token, True

    @_reports_failure
    def token_calls(self, budget: str, since: datetime) -> list[TokenCall]:
        """The token calls counted for ``budget`` since ``since``, oldest first."""
        rows = self._connection.execute(
            "SELECT at, token FROM token_calls WHERE budget = ? AND at >= ? ORDER BY at",
            (budget, _call_at(since)),
        ).fetchall()
        return [TokenCall(_call_time(row[0]), row[1]) for row in rows]

    @_reports_failure
    def count_token_call(
        self,
        budget: str,
        call: TokenCall,
        decide: Callable[[Sequence[TokenCall]], datetime | None],
        *,
        keep_since: datetime,
    ) -> datetime | None:
        """Count a token call under the write lock if ``decide`` allows it (see the protocol)."""
        with self._transaction(groupable=True) as connection:
            connection.execute(
                "DELETE FROM token_calls WHERE budget = ? AND at < ?",
                (budget, _call_at(keep_since)),
            )
            rows = connection.execute(
                "SELECT at, token FROM token_calls WHERE budget = ? ORDER BY at", (budget,)
            ).fetchall()
            refused_until = decide([TokenCall(_call_time(row[0]), row[1]) for row in rows])
            if refused_until is None:
                connection.execute(
                    "INSERT INTO token_calls (budget, at, token) VALUES (?, ?, ?)",
                    (budget, _call_at(call.at), call.token),
                )
        return refused_until

    @_reports_failure
    def notices(self) -> list[NoticeMark]:
        """The last notice sent about each token, per webhook and channel."""
        rows = self._connection.execute(
            "SELECT token, key, state, at FROM notices ORDER BY token, key"
        ).fetchall()
        return [NoticeMark(row[0], row[1], row[2], _call_time(row[3])) for row in rows]

    @_reports_failure
    def mark_notice(
        self, number: int, key: str, expected: str | None, state: str | None, now: datetime
    ) -> bool:
        """Set (or remove) one notice mark if it is ``expected``, under the write lock."""
        with self._transaction() as connection:
            row = connection.execute(
                "SELECT state FROM notices WHERE token = ? AND key = ?", (number, key)
            ).fetchone()
            if (None if row is None else row[0]) != expected:
                return False
            if state is None:
                connection.execute("DELETE FROM notices WHERE token = ? AND key = ?", (number, key))
            else:
                connection.execute(
                    "INSERT OR REPLACE INTO notices (token, key, state, at) VALUES (?, ?, ?, ?)",
                    (number, key, state, _call_at(now)),
                )
        return True

    @_reports_failure
    def webhook_secret(self, receiver: str) -> str | None:
        """The signing secret sealed for the webhook ``receiver``; ``None`` when none.

        Opens the OS keyring (the data key) only when one is sealed.
        """
        return self.sealed.read_client(self._connection, WEBHOOK_SECRETS, receiver)

    @_reports_failure
    def set_webhook_secret(self, receiver: str, secret: str) -> None:
        """Seal ``secret`` as the signing secret of the webhook ``receiver``."""
        self._prepare_sealing()
        with self._transaction() as connection:
            self.sealed.write_client(connection, WEBHOOK_SECRETS, receiver, secret)

    def delete_webhook_secret(self, receiver: str) -> bool:
        """Remove the sealed signing secret of the webhook ``receiver``; needs no keyring."""
        return self.delete_client_secret(WEBHOOK_SECRETS, receiver)

    @_reports_failure
    def delete(self, number: int, actor: Actor, now: datetime, *, detail: str | None) -> bool:
        """Remove the record and its sealed secrets; the history keeps a ``deleted`` event.

        Returns whether sealed secrets were removed.
        """
        with self._transaction() as connection:
            row = connection.execute(
                "SELECT name FROM tokens WHERE number = ?", (number,)
            ).fetchone()
            if row is None:
                raise NotFoundError(f"token #{number} no longer exists")
            connection.execute("DELETE FROM tokens WHERE number = ?", (number,))
            removed = connection.execute("DELETE FROM token_secrets WHERE number = ?", (number,))
            # Numbers are never reused: its notices would never be read again.
            connection.execute("DELETE FROM notices WHERE token = ?", (number,))
            self._insert_event(connection, number, row[0], actor, now, "deleted", "ok", detail)
        return removed.rowcount > 0

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

    # -- secrets -------------------------------------------------------------------------

    def store_facts(self) -> Mapping[str, Any]:
        """The local store: its SQLite file; secrets sealed under a data key in the keyring."""
        return {"kind": "local", "path": str(self.path)}

    def ensure_secrets_writable(self) -> None:
        """Raise ``SecretStoreError`` unless the OS keyring (the data key's) is usable now."""
        self.sealed.keyring().ensure_available()

    @property
    def inventory_id(self) -> str:
        """The random id that names this inventory's data key entry in the keyring."""
        return self.sealed.inventory_id

    def _prepare_sealing(self) -> None:
        """Before a secret is written: legacy entries moved in, the data key read.

        Both talk to the keyring, which may take a while (an unlock prompt): done outside
        the write transaction, so other processes are not kept waiting meanwhile.
        """
        self._move_legacy_secrets()
        self.sealed.keys()

    @_reports_failure
    def secrets(self, number: int) -> TokenSecrets | None:
        """The secrets sealed for token ``number``, opened; ``None`` when none are stored.

        ``DataKeyMissingError`` when the keyring lost the data key, ``SecretUnreadableError``
        (this token only) when its values do not open.
        """
        self._move_legacy_secrets()
        found = self.sealed.read_token(self._connection, number)
        if found is not None:
            return found
        row = self._connection.execute(
            "SELECT legacy_secret_ref FROM tokens WHERE number = ?", (number,)
        ).fetchone()
        if row is not None and row[0] is not None:
            # A legacy entry that could not be moved in: say what is wrong with it.
            ref = row[0]
            return parse_entry(KEYRING_SERVICE, ref, self.sealed.keyring().get_text(ref))
        return None

    @_reports_failure
    def client_secret(self, definition: str, client_id: str) -> str | None:
        """The client secret sealed for ``client_id`` of ``definition``; ``None`` when none.

        One still in its legacy keyring entry is moved in first.
        """
        found = self.sealed.read_client(self._connection, definition, client_id)
        if found is not None:
            return found
        keyring = self.sealed.keyring()
        ref = client_secret_ref(definition, client_id)
        stored = parse_entry(KEYRING_SERVICE, ref, keyring.get_text(ref))
        if stored is None or not stored.client_secret:
            return None
        self.sealed.keys()
        with self._transaction() as connection:
            self.sealed.write_client(
                connection, definition, client_id, stored.client_secret, replace=False
            )
        if stored.inventory == self._path_key:
            keyring.delete(ref)  # another home's entry of the same name is left to it
        return self.sealed.read_client(self._connection, definition, client_id)

    @_reports_failure
    def set_client_secret(self, definition: str, client_id: str, secret: str) -> None:
        """Seal ``secret`` as the client secret of ``client_id`` in ``definition``."""
        self._prepare_sealing()
        with self._transaction() as connection:
            self.sealed.write_client(connection, definition, client_id, secret)
        keyring = self.sealed.keyring()
        ref = client_secret_ref(definition, client_id)
        try:
            legacy = parse_entry(KEYRING_SERVICE, ref, keyring.get_text(ref))
        except SecretStoreError:
            legacy = None  # not tokenctl's: not ours to remove
        if legacy is not None and legacy.inventory == self._path_key:
            keyring.delete(ref)  # superseded: never read again

    @property
    def _path_key(self) -> str:
        """The inventory as legacy entries named it (``Paths.inventory_key``)."""
        return str(self.path.resolve())

    def _move_legacy_secrets(self) -> None:
        """Move the secrets of tokenctl 0.x's per-token keyring entries into the inventory.

        Once per process, on the first secret read or written. For each token: copy the
        entry into its sealed row and commit; only then delete the entry; then forget its
        name. A process killed at any step leaves the entry or the row or both, never
        neither, and the next run finishes the step; nothing is copied twice (a row
        already sealed, say by a renewal since, is never overwritten by the older entry).
        """
        if self._legacy_moved:
            return
        rows = self._connection.execute(
            "SELECT number, legacy_secret_ref, secret_set_at IS NOT NULL FROM tokens "
            "WHERE legacy_secret_ref IS NOT NULL ORDER BY number"
        ).fetchall()
        if rows:
            keyring = self.sealed.keyring()
            self.sealed.keys()
            for number, ref, had_secret in rows:
                self._move_legacy_token(keyring, number, ref, had_secret=bool(had_secret))
        self._legacy_moved = True

    def _move_legacy_token(
        self, keyring: Keyring, number: int, ref: str, *, had_secret: bool
    ) -> None:
        text = keyring.get_text(ref)
        stored = None
        if text is None and had_secret and self.sealed.read_row_exists(self._connection, number):
            had_secret = False  # stored anew in the inventory since: the entry is history
        if text is None and had_secret:
            # The record says a secret was stored, this keyring has none: another keyring
            # (a session without the desktop's) may hold it. Keep the name; try again later.
            return
        if text is not None:
            try:
                stored = TokenSecrets.from_json(text)
            except (ValueError, TypeError, RecursionError):
                return  # not tokenctl's: left for `secrets` to report, for this token only
        with self._transaction() as connection:
            current = connection.execute(
                "SELECT legacy_secret_ref FROM tokens WHERE number = ?", (number,)
            ).fetchone()
            if current is None or current[0] != ref:
                return  # deleted or moved by another process meanwhile
            sealed = connection.execute(
                "SELECT 1 FROM token_secrets WHERE number = ?", (number,)
            ).fetchone()
            if stored is not None and sealed is None and _holds_secret(stored):
                self.sealed.write_token(connection, number, stored)
        if stored is not None and stored.inventory in (None, self._path_key):
            keyring.delete(ref)  # an entry written for a copy of this inventory stays
        with self._transaction() as connection:
            connection.execute(
                "UPDATE tokens SET legacy_secret_ref = NULL "
                "WHERE number = ? AND legacy_secret_ref = ?",
                (number, ref),
            )

    @_reports_failure
    def secret_summary(self, *, verify: bool) -> SecretSummary:
        """The data key's entry and versions, and what it protects.

        Reads the keyring. ``verify`` opens every sealed value to name those that do not.
        """
        from tokenctl.inventory.key_reports import SecretSummary

        connection = self._connection
        recorded = meta_value(connection, KEY_VERSION)
        key_problem = None
        try:
            keys = self.sealed.keys(fresh=True)
        except SecretStoreError as error:
            keys, key_problem = None, error.message
        tokens = connection.execute("SELECT count(*) FROM token_secrets").fetchone()[0]
        clients = connection.execute("SELECT count(*) FROM client_secrets").fetchone()[0]
        filled = " + ".join(f"count({name})" for name in TOKEN_FIELDS)
        values = connection.execute(f"SELECT {filled} FROM token_secrets").fetchone()[0]  # noqa: S608
        by_version: dict[int, int] = {}
        for table in ("token_secrets", "client_secrets"):
            for version, count in connection.execute(
                f"SELECT key_version, count(*) FROM {table} GROUP BY key_version"  # noqa: S608
            ):
                by_version[version] = by_version.get(version, 0) + count
        legacy = connection.execute(
            "SELECT count(*) FROM tokens WHERE legacy_secret_ref IS NOT NULL"
        ).fetchone()[0]
        unreadable: list[str] = []
        if verify and keys is not None:
            unreadable = self._unreadable()
        return SecretSummary(
            inventory_id=self.inventory_id,
            key_entry=self.sealed.key_ref,
            key_version=None if recorded is None else int(recorded),
            keyring_versions=None if keys is None else tuple(sorted(keys.versions)),
            tokens=tokens,
            client_secrets=clients,
            values=(values or 0) + clients,
            by_version=by_version,
            legacy_pending=legacy,
            unreadable=tuple(unreadable),
            key_problem=key_problem,
        )

    def _unreadable(self) -> list[str]:
        """Names of the tokens (and ``definition/client``) whose sealed values do not open."""
        tokens, clients = self._unreadable_rows()
        return [name for _, name in tokens] + [f"{d}/{c}" for d, c in clients]

    def _unreadable_rows(self) -> tuple[list[tuple[int, str]], list[tuple[str, str]]]:
        """``(number, name)`` of tokens and ``(definition, client_id)`` that do not open."""
        tokens: list[tuple[int, str]] = []
        for number, name in self._connection.execute(
            "SELECT s.number, COALESCE(t.name, '#' || s.number) FROM token_secrets s "
            "LEFT JOIN tokens t USING (number) ORDER BY s.number"
        ).fetchall():
            try:
                self.sealed.read_token(self._connection, number)
            except SecretStoreError:
                tokens.append((number, name))
        clients: list[tuple[str, str]] = []
        for definition, client_id in self._connection.execute(
            "SELECT definition, client_id FROM client_secrets ORDER BY definition, client_id"
        ).fetchall():
            try:
                self.sealed.read_client(self._connection, definition, client_id)
            except SecretStoreError:
                clients.append((definition, client_id))
        return tokens, clients

    @_reports_failure
    def rotate_key(self, progress: Callable[[int], None] | None = None) -> RotationResult:
        """Re-seal every secret under a new data key version, then drop the old versions.

        Resumable: the keyring entry lists the old and new versions until every value
        is re-sealed, so a run interrupted anywhere leaves every secret readable, and the
        next run continues with the same new version. ``progress`` hears the number of
        values moved so far after each batch. Callers serialise rotations (a lock).
        """
        from tokenctl.inventory.key_reports import RotationResult

        self._move_legacy_secrets()
        keyring = self.sealed.keyring()
        keys = self.sealed.keys(fresh=True)
        with self._transaction() as connection:
            count = sealed_count(connection)
            recorded = meta_value(connection, KEY_VERSION)
        if keys is None:
            if count:
                raise self.sealed.missing_key()
            return RotationResult(version=None, moved=0, resumed=False, dropped=())
        resumed = len(keys.versions) > 1
        if not resumed:
            keys = keys.with_version(max(keys.newest, int(recorded or 0)) + 1)
            keyring.set_text(self.sealed.key_ref, keys.to_entry())
        target = keys.newest
        self.sealed.forget_keys(keys)
        with self._transaction() as connection:
            set_meta(connection, KEY_VERSION, str(target))  # from now on every write seals so
        moved = 0
        stuck: list[str] = []
        left = 1
        # By design nothing is sealed under an old version once `key_version` is raised;
        # should anything be (a tokenctl that predates this rule), another pass moves it.
        for _ in range(3):
            after = 0
            while True:
                with self._transaction() as connection:
                    last, done, failed = self.sealed.reseal_tokens(
                        connection, target, after, self.ROTATION_BATCH
                    )
                moved, stuck = moved + done, stuck + failed
                if progress is not None and done:
                    progress(moved)
                if last is None:
                    break
                after = last
            with self._transaction() as connection:
                done, failed = self.sealed.reseal_clients(connection, target)
                moved, stuck = moved + done, stuck + failed
                left = connection.execute(
                    "SELECT (SELECT count(*) FROM token_secrets WHERE key_version != ?) + "
                    "(SELECT count(*) FROM client_secrets WHERE key_version != ?)",
                    (target, target),
                ).fetchone()[0]
            if stuck or not left:
                break
        if stuck or left:
            if not stuck:  # still moving under our feet: name what is left
                stuck = [
                    row[0]
                    for row in self._connection.execute(
                        "SELECT COALESCE(t.name, '#' || s.number) FROM token_secrets s "
                        "LEFT JOIN tokens t USING (number) WHERE s.key_version != ?",
                        (target,),
                    )
                ] or ["client secrets"]
            return RotationResult(target, moved, resumed, (), tuple(stuck))
        dropped = tuple(version for version in sorted(keys.versions) if version != target)
        keyring.set_text(self.sealed.key_ref, keys.only(target).to_entry())
        self.sealed.forget_keys(keys.only(target))
        return RotationResult(target, moved, resumed, dropped)

    @_reports_failure
    def reset_key(self, actor: Actor, now: datetime) -> list[str]:
        """Give up the secrets that cannot be opened, so that new ones can be stored.

        With the data key lost, that is every sealed secret (the next one makes a new key);
        with the key there, only the values that do not open with it. Refused when there
        is nothing to give up. Each token concerned is recorded as having no secret, with
        a history event; returns the names of the tokens and clients given up.
        """
        self._move_legacy_secrets()
        not_a_key = False
        try:
            keys = self.sealed.keys(fresh=True)
        except NewerDataKeyError:
            raise  # a newer tokenctl's key: upgrade, never give it up
        except SecretStoreError:
            keys, not_a_key = None, True  # an entry that is not a data key opens nothing
        if keys is None:
            tokens = self._connection.execute(
                "SELECT s.number, COALESCE(t.name, '#' || s.number) FROM token_secrets s "
                "LEFT JOIN tokens t USING (number) ORDER BY s.number"
            ).fetchall()
            clients = self._connection.execute(
                "SELECT definition, client_id FROM client_secrets"
            ).fetchall()
            detail = "its data key was lost; `tokenctl key reset` gave the secret up"
        else:
            tokens, clients = self._unreadable_rows()
            detail = "it did not open with the data key; `tokenctl key reset` gave it up"
        if not tokens and not clients:
            if keys is None:
                raise SecretStoreError(
                    "no secret is stored that could not be read: nothing to reset",
                    hint="the next secret stored makes a new data key",
                )
            raise SecretStoreError(
                "the data key of this inventory is in the OS keyring and opens every secret: "
                "nothing to reset",
                hint="to seal everything under a new key, run `tokenctl key rotate`",
            )
        changes = (
            "secret_set_at = NULL, has_refresh_token = 0, has_id_token = 0, "
            "updated_at = ?, updated_by = ?, updated_unit = ?"
        )
        discarded_tokens: list[tuple[int, str]] = []
        discarded_clients: list[tuple[str, str]] = []
        with self._transaction() as connection:
            for number, name in tokens:
                if keys is not None and self._opens_now(connection, number):
                    continue  # renewed since it was looked at: a readable secret stays
                discarded_tokens.append((number, name))
                connection.execute("DELETE FROM token_secrets WHERE number = ?", (number,))
                updated = connection.execute(
                    f"UPDATE tokens SET {changes} WHERE number = ?",  # noqa: S608 - fixed
                    (to_iso(now), actor.user, actor.unit, number),
                )
                if updated.rowcount:
                    self._insert_event(
                        connection, number, name, actor, now, "secret discarded", "ok", detail
                    )
            for definition, client_id in clients:
                if keys is not None and self._client_opens_now(connection, definition, client_id):
                    continue
                discarded_clients.append((definition, client_id))
                connection.execute(
                    "DELETE FROM client_secrets WHERE definition = ? AND client_id = ?",
                    (definition, client_id),
                )
        # With the key lost, the next secret written makes a new key of the next version
        # (see sealing_key). An entry under this inventory's name that is not a data key
        # would stop that: the user has just given up what it might have opened.
        if not_a_key:
            self.sealed.keyring().delete(self.sealed.key_ref)
        self.sealed.forget_keys()
        return [name for _, name in discarded_tokens] + [f"{d}/{c}" for d, c in discarded_clients]

    def _opens_now(self, connection: sqlite3.Connection, number: int) -> bool:
        """Whether token ``number``'s sealed row, as it is now, is gone or opens."""
        try:
            self.sealed.read_token(connection, number)
        except SecretStoreError:
            return False
        return True

    def _client_opens_now(
        self, connection: sqlite3.Connection, definition: str, client_id: str
    ) -> bool:
        """Whether a client's sealed secret, as it is now, is gone or opens."""
        try:
            self.sealed.read_client(connection, definition, client_id)
        except SecretStoreError:
            return False
        return True

    @_reports_failure
    def delete_client_secret(self, definition: str, client_id: str) -> bool:
        """Remove the sealed client secret of ``client_id`` in ``definition``; ``True`` if any.

        Needs no keyring: nothing is opened.
        """
        with self._transaction() as connection:
            removed = connection.execute(
                "DELETE FROM client_secrets WHERE definition = ? AND client_id = ?",
                (definition, client_id),
            )
        return removed.rowcount > 0

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

    def refresh_lease(self, number: int, holder: str, ttl: float) -> RefreshLease:
        """The machine's file lock of token ``number``: the OS drops it with its holder.

        Every process that uses this inventory file is on this machine, so the lock is
        enough; ``holder`` and ``ttl`` are not needed.
        """
        return FileLease(self.locks_dir / f"token-{number}.lock")

    def actor_identity(self) -> str | None:
        """None: the local store knows only the OS user and the unit."""
        return None

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
