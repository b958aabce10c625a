"""The team store's inventory: records, history and secrets in an OpenBao KV version 2 mount.

:class:`OpenBaoInventory` implements :class:`tokenctl.inventory.Inventory` on the layout
of :mod:`.layout`. KV has no transactions; every change is made of single-key writes,
each with check-and-set, ordered so that a process killed between two of them leaves
nothing that misleads:

- A read-modify-write reads the key (its version ``v``), changes it and writes it with
  ``cas=v``; when another machine wrote meanwhile the write is refused and the whole
  step runs again on what is there now (``update_if``'s ``decide`` too), so no
  concurrent change is lost.
- Names and codes are claimed create-only (``cas=0``) before the record is written, so
  two machines never both get one. A claim left behind by a process that died (its
  record absent for long, or renamed since) is taken over.
- A token's secrets are written before its record: killed in between, the stored
  secret is newer than the record, never a record claiming a secret that is not there.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, NoReturn

from tokenctl.errors import (
    ConflictError,
    InventoryError,
    NotFoundError,
    SecretStoreError,
    TokenctlError,
    UsageError,
)
from tokenctl.inventory import UpdateThroughUpdateIf
from tokenctl.models import (
    Actor,
    HistoryEvent,
    NoticeMark,
    Token,
    TokenCall,
    TokenChanges,
    TokenSecrets,
)
from tokenctl.store.openbao.kv import RETRY_FOR, CasConflict, Entry, KvStore
from tokenctl.store.openbao.layout import (
    FORMAT,
    HISTORY_CHUNK,
    PAGE_SIZE,
    Layout,
    encode_segment,
    normal_path,
    page_of,
)
from tokenctl.store.openbao.records import (
    MalformedRecordError,
    event_from,
    event_text,
    id_of_event,
    record_text,
    secrets_data,
    secrets_from,
    token_from_text,
)
from tokenctl.timeutil import from_iso, to_iso

if TYPE_CHECKING:
    from tokenctl.inventory import RefreshLease
    from tokenctl.inventory.key_reports import RotationResult, SecretSummary
    from tokenctl.store.openbao.auth import StoreLogin

#: Fields of :class:`Token` that ``update`` may change.
MUTABLE_FIELDS = frozenset(TokenChanges.__annotations__)
#: How long a claimed name or code whose record never appeared counts as an ``add``
#: still under way (an add takes milliseconds, or seconds on a busy server); after
#: that, as left behind by one that was cut short. Measured on the server's clock.
ABANDONED_AFTER = timedelta(minutes=2)
#: Check-and-set attempts of one change before giving up (each after a short random wait).
MAX_ATTEMPTS = 60

_NAME_HINT = "choose another name, or `tokenctl delete` the old token first"
_CODE_HINT = "choose another code, or leave --code out to have one generated"


def identity_text(found: Mapping[str, Any]) -> str | None:
    """A store token's look-up (``auth/token/lookup-self``) as the identity history keeps.

    ``None`` when it names nothing.
    """
    display = str(found.get("display_name") or "").strip()
    meta = found.get("meta")
    meta = meta if isinstance(meta, dict) else {}
    role = str(meta.get("role_name") or meta.get("role") or "").strip()
    entity = str(found.get("entity_id") or "").strip()
    parts = [f"role {role}"] if role else []
    if entity:
        parts.append(f"entity {entity}")
    policies = found.get("policies")
    if not parts and isinstance(policies, list) and policies:
        parts.append("policies " + ",".join(sorted(str(p) for p in policies)))
    if not display and not parts:
        return None
    if not parts:
        return display
    return f"{display or 'token'} ({'; '.join(parts)})"


@dataclass(frozen=True)
class _Page:
    """One page of records as read: ``{"<number>": record text}`` and its version."""

    path: str
    stored: dict[str, Any]
    #: 0 when the page was never written (check-and-set then creates it).
    version: int


@dataclass(frozen=True)
class _Written:
    """Secrets a change wrote: where, the version it made, and the data it replaced."""

    path: str
    version: int
    replaced: dict[str, Any]


class _Unread:
    """The history was not read by the caller (:meth:`OpenBaoInventory._append_event`)."""


_UNREAD = _Unread()


class _Pending:
    """What ``_holds`` says of a key whose token is still being added."""


_PENDING = _Pending()


class OpenBaoInventory(UpdateThroughUpdateIf):
    """The team store's :class:`~tokenctl.inventory.Inventory`, on OpenBao or Vault KV v2.

    ``address`` is the server's URL, ``token`` the store token (or the login that gets
    one, :mod:`.auth`), ``mount`` the KV version
    2 secrets engine and ``prefix`` the team's path in it (one inventory per prefix).
    ``retry_for``: seconds a call keeps retrying while the server is unavailable.
    OpenBao encrypts what it stores; there is no data key of tokenctl's and no keyring.
    The steps of a refresh (``get``, ``secrets``, ``update_if``, ``update``,
    ``record_event`` and the leases) may run on several threads at once, for different
    tokens (``renew --all``): this process changes one records page at a time, and
    check-and-set meets the other machines. Everything else: one thread at a time.
    """

    remote = True  # every call asks the server

    def __init__(
        self,
        address: str,
        token: str | StoreLogin,
        mount: str,
        prefix: str,
        *,
        namespace: str | None = None,
        verify: bool | str = True,
        timeout: float = 30.0,
        retry_for: float = RETRY_FOR,
    ) -> None:
        self.mount = normal_path(mount, what="mount")
        self.prefix = normal_path(prefix, what="path")
        self.layout = Layout(self.prefix)
        self.kv = KvStore(
            address,
            token,
            self.mount,
            namespace=namespace,
            verify=verify,
            timeout=timeout,
            retry_for=retry_for,
        )
        self.address = self.kv.address
        self.namespace = namespace
        #: The store identity of this process (``actor_identity``), looked up once.
        self._identity: str | _Unread | None = _UNREAD
        #: ``(next number, counter version)`` as this process last wrote them: the next
        #: allocation tries them first and reads the counter only when another wrote since.
        self._counter: tuple[int, int] | None = None
        #: Each token's definition as last read here: where its secrets are (under it).
        self._definitions: dict[int, str] = {}
        #: The server said the store token may change the records (ensure_secrets_writable).
        self._may_write = False
        #: One lock per records page: this process's changes of one page, one at a time.
        self._page_locks: dict[str, threading.Lock] = {}
        self._page_locks_lock = threading.Lock()
        try:
            self._inventory_id = self._read_meta()
        except BaseException:
            self.kv.close()
            raise

    @property
    def where(self) -> str:
        """The team inventory as messages name it: mount, prefix and server."""
        return f"{self.mount}/{self.prefix} on the team store {self.address}"

    # -- meta ----------------------------------------------------------------------------

    def _read_meta(self) -> str | None:
        """The inventory id, after checking the format; ``None`` before the first write."""
        entry = self.kv.read(self.layout.meta)
        if entry is None:
            return None
        stored_format, inventory_id = entry.data.get("format"), entry.data.get("inventory_id")
        if isinstance(stored_format, int) and stored_format > FORMAT:
            raise InventoryError(
                f"the team inventory {self.where} has format {stored_format}, newer than "
                f"this tokenctl's ({FORMAT})",
                hint="upgrade tokenctl",
            )
        if stored_format != FORMAT or not isinstance(inventory_id, str) or not inventory_id:
            raise self._malformed(self.layout.meta, "not the meta of a tokenctl inventory")
        return inventory_id

    def _ensure_meta(self) -> str:
        """The inventory id; the first writer of an inventory makes it (create-only)."""
        if self._inventory_id is not None:
            return self._inventory_id
        made = uuid.uuid4().hex
        try:
            self.kv.write(self.layout.meta, {"format": FORMAT, "inventory_id": made}, cas=0)
        except CasConflict:
            self._inventory_id = self._read_meta()  # another machine was first
        else:
            self._inventory_id = made
        assert self._inventory_id is not None
        return self._inventory_id

    @property
    def inventory_id(self) -> str:
        """The inventory's random id, made by its first writer."""
        return self._ensure_meta()

    # -- reads ---------------------------------------------------------------------------

    def resolve(self, ref: str) -> Token:
        """Find a token by number, name or authentication code (in that order)."""
        found = None
        if ref.isdigit():
            found = self._find(int(ref))
        if found is None and ref:
            found = self._find_indexed(self.layout.name(ref), "name", ref)
        if found is None and ref:
            found = self._find_indexed(self.layout.code(ref), "authentication_code", ref)
        if found is None:
            raise NotFoundError(
                f"no token {ref!r}",
                hint="give a number, name or authentication code from `tokenctl list`",
            )
        return found

    def get(self, number: int) -> Token:
        """The token with this number as it is now; ``NotFoundError`` once it is gone."""
        found = self._find(number)
        if found is None:
            raise NotFoundError(f"token #{number} no longer exists")
        return found

    def tokens(self) -> list[Token]:
        """Every token, ordered by number: one read per page of records, several at once."""
        counter = self.kv.read(self.layout.counter)
        if counter is None:
            return []
        last = self._next_number(counter) - 1
        paths = [self.layout.page(page) for page in range(page_of(last) + 1)] if last else []
        found: list[Token] = []
        for path, entry in zip(paths, self.kv.read_many(paths), strict=True):
            page = self._page(path, entry)
            found += (self._decode(page, key) for key in page.stored)
        found.sort(key=lambda token: token.number)
        return found

    def history(self, number: int, limit: int | None = None) -> list[HistoryEvent]:
        """Events of one token number, newest first (older chunks read only when needed)."""
        if limit is not None and limit < 0:
            limit = None
        path = self.layout.history(number)
        entry = self.kv.read(path)
        if entry is None or limit == 0:
            return []
        texts, archived = self._history_parts(path, entry)
        found = self._events(path, number, texts)
        for first in reversed(archived):
            if limit is not None and len(found) >= limit:
                break
            chunk_path = self.layout.history_chunk(number, first)
            chunk = self.kv.read(chunk_path)
            if chunk is not None:
                texts = self._history_parts(chunk_path, chunk)[0]
                found += self._events(chunk_path, number, texts)
        return found if limit is None else found[:limit]

    def names_using_definition(self, definition: str) -> Sequence[str]:
        """Names of the tokens whose definition is ``definition``."""
        return [token.name for token in self.tokens() if token.definition == definition]

    def _find(self, number: int) -> Token | None:
        """Token ``number`` as stored now, or ``None``."""
        if number < 1:
            return None
        path = self.layout.page(page_of(number))
        return self._record(self._page(path, self.kv.read(path)), number)

    def _find_indexed(self, path: str, field: str, value: str) -> Token | None:
        """The token a name or code key points to, if its record still says so."""
        entry = self.kv.read(path)
        if entry is None:
            return None
        owner = entry.data.get("number")
        token = self._find(owner) if type(owner) is int else None
        # A key left behind by a rename or delete that was cut short points elsewhere.
        return token if token is not None and getattr(token, field) == value else None

    def _page_path(self, number: int) -> str:
        return self.layout.page(page_of(number))

    def _page(self, path: str, entry: Entry | None) -> _Page:
        """A page of records as read (``entry``; ``None``: not written yet)."""
        if entry is None:
            return _Page(path, {}, 0)
        stored = entry.data.get("tokens")
        if not isinstance(stored, dict):
            raise self._malformed(path, "not a page of token records")
        return _Page(path, stored, entry.version)

    def _record(self, page: _Page, number: int) -> Token | None:
        """Token ``number`` on ``page``, decoded; ``None`` when it is not there."""
        return self._decode(page, str(number)) if str(number) in page.stored else None

    def _current(self, page: _Page, number: int) -> Token:
        """Token ``number`` on ``page``; ``NotFoundError`` when it is not there."""
        current = self._record(page, number)
        if current is None:
            raise NotFoundError(f"token #{number} no longer exists")
        return current

    def _decode(self, page: _Page, key: str) -> Token:
        try:
            token = token_from_text(int(key), page.stored[key])
        except ValueError as error:  # MalformedRecordError too
            raise self._malformed(page.path, f"token {key!r}: {error}") from None
        self._definitions[token.number] = token.definition
        return token

    def _next_number(self, counter: Entry) -> int:
        value = counter.data.get("next")
        if type(value) is not int or value < 1:
            raise self._malformed(self.layout.counter, "not a token counter")
        return value

    def _events(self, path: str, number: int, texts: list[Any]) -> list[HistoryEvent]:
        """Stored events, newest first."""
        try:
            return [event_from(number, text) for text in reversed(texts)]
        except MalformedRecordError as error:
            raise self._malformed(path, str(error)) from None

    def _history_parts(self, path: str, entry: Entry) -> tuple[list[Any], list[int]]:
        """A history key's events (as stored) and the first ids of its archived chunks."""
        texts, archived = entry.data.get("events"), entry.data.get("archived", [])
        if not isinstance(texts, list) or not isinstance(archived, list):
            raise self._malformed(path, "not a token history")
        if not all(type(first) is int for first in archived):
            raise self._malformed(path, "not a token history")
        return texts, archived

    # -- writes --------------------------------------------------------------------------

    def add(
        self, token: Token, actor: Actor, now: datetime, *, secrets: TokenSecrets | None = None
    ) -> Token:
        """Insert a new record (numbered here), its secrets and a ``created`` event.

        The number is taken from the shared counter: unique across machines, never
        reused (one taken by an ``add`` that was then refused is skipped). The name and
        the code are claimed before anything else is written, and given back when the
        add fails; ``secrets`` are written before the record.
        """
        self._ensure_meta()
        number = self._allocate_number()
        record = replace(
            token,
            number=number,
            legacy_secret_ref=None,
            created_at=now,
            created_by=actor.user,
            created_unit=actor.unit,
            created_identity=actor.identity,
            updated_at=now,
            updated_by=actor.user,
            updated_unit=actor.unit,
            updated_identity=actor.identity,
        )
        text = record_text(record)  # checks the state before anything is claimed
        name, code = token.name, token.authentication_code
        claimed: list[str] = []
        wrote_secrets: str | None = None  # where this add wrote the secrets
        secret_path = self.layout.secrets(token.definition, number)
        try:
            self._claim(self.layout.name(name), number, "name", name)
            claimed.append(self.layout.name(name))
            self._claim(self.layout.code(code), number, "authentication_code", code)
            claimed.append(self.layout.code(code))
            path = self._page_path(number)
            as_code, as_name, page_entry = self.kv.read_all(
                [(self.layout.code(name), False), (self.layout.name(code), False), (path, False)]
            )
            self._refuse_name_as_code(name, number, as_code)
            self._refuse_code_as_name(code, number, as_name)
            if secrets is not None:
                wrote_secrets = secret_path
                try:
                    self._write_secrets(secret_path, secrets_data(secrets), expected=0)
                except CasConflict:  # left by an add of this number cut short: ours now
                    left = self.kv.read(secret_path, secret=True)
                    self._replace_secrets(secret_path, secrets_data(secrets), None, left)
            self._insert_record(number, text, self._page(path, page_entry))
        except BaseException:
            self._give_back(number, claimed, wrote_secrets)
            raise
        self._definitions[number] = record.definition
        self._append_event(number, name, actor, now, "created", "ok", None, history=None)
        return token_from_text(number, text)  # as a read gives it back (times to the second)

    def import_token(
        self,
        token: Token,
        secrets: TokenSecrets | None,
        history: Sequence[HistoryEvent],
        *,
        replace: bool = False,
    ) -> Token:
        """Insert ``token`` with its own number, code, log information and ``history``.

        The counter is raised past the number first, so no ``add`` is handed it from
        then on. Then, as ``add`` does, the name and code are claimed, the secrets
        written, then the history, and the record last: a copy killed before the record
        leaves no token, and the next run (``replace``, since the history is there)
        finishes it. See :meth:`tokenctl.inventory.Inventory.import_token`.
        """
        number = token.number
        if number < 1:
            raise ValueError(f"token number {number} is not a token number")
        self._ensure_meta()
        self._raise_counter(number + 1)
        text = record_text(token)  # its number is the key; no legacy keyring entry
        path, history_path = self._page_path(number), self.layout.history(number)
        secret_path = self.layout.secrets(token.definition, number)
        page_entry, history_entry, secret_entry = self.kv.read_all(
            [(path, False), (history_path, False), (secret_path, True)]
        )
        current = self._record(self._page(path, page_entry), number)
        if (current is not None or history_entry is not None) and not replace:
            raise ConflictError(
                f"token number {number} is already used in the team inventory {self.where}",
                hint="compare the two with `tokenctl store copy --dry-run`; "
                "`--overwrite` replaces it",
            )
        name, code = token.name, token.authentication_code
        claimed: list[str] = []
        recorded = False
        try:
            for key, field, value in (
                (self.layout.name(name), "name", name),
                (self.layout.code(code), "authentication_code", code),
            ):
                self._claim(key, number, field, value)
                claimed.append(key)
            as_code, as_name = self.kv.read_all(
                [(self.layout.code(name), False), (self.layout.name(code), False)]
            )
            self._refuse_name_as_code(name, number, as_code)
            self._refuse_code_as_name(code, number, as_name)
            data = {} if secrets is None else secrets_data(secrets)
            if data:
                self.kv.write(secret_path, data, cas=None, secret=True)
            elif secret_entry is not None:
                self.kv.remove(secret_path, secret=True)
            if current is not None and current.definition != token.definition:
                # The token it replaces kept its secrets under its own definition.
                self.kv.remove(self.layout.secrets(current.definition, number), secret=True)
            self._write_history(number, history, history_entry)
            for attempt in self._attempts(f"token #{number}"):
                page = self._page(path, self.kv.read(path) if attempt else page_entry)
                try:
                    self._write_page(page, {**page.stored, str(number): text})
                except CasConflict:
                    continue
                break
            recorded = True
        finally:
            if not recorded:
                with suppress(TokenctlError):
                    kept = set()  # keys the record this replaces still uses
                    if current is not None:
                        kept = {self.layout.name(current.name)}
                        kept.add(self.layout.code(current.authentication_code))
                    for key in claimed:
                        if key not in kept:
                            self._release(key, number)
        if current is not None:
            for old, new in (
                (self.layout.name(current.name), self.layout.name(name)),
                (self.layout.code(current.authentication_code), self.layout.code(code)),
            ):
                if old != new:
                    self._release(old, number)
        self._definitions[number] = token.definition
        return token_from_text(number, text)

    def _raise_counter(self, needed: int) -> None:
        """Make the counter hand out no number below ``needed`` (check-and-set)."""
        self._counter = None  # the next `add` reads it again
        for _ in self._attempts("the token counter"):
            entry = self.kv.read(self.layout.counter)
            if entry is not None and self._next_number(entry) >= needed:
                return
            try:
                self.kv.write(
                    self.layout.counter,
                    {"next": needed},
                    cas=0 if entry is None else entry.version,
                )
            except CasConflict:
                continue
            return

    def _write_history(
        self, number: int, events: Sequence[HistoryEvent], entry: Entry | None
    ) -> None:
        """Make ``events`` (newest first) the whole history of token ``number``.

        Numbered from 1 as appended events are, in chunks as ``_append_event`` keeps
        them: the archived chunks first, then the history key; chunks of the history
        replaced that the new one does not have are removed last.
        """
        path = self.layout.history(number)
        if not events and entry is None:
            return  # nothing to keep: no key (it would count as a number used)
        texts = [
            event_text(
                event_id,
                event.token_name,
                event.actor,
                event.at,
                event.event,
                event.outcome,
                event.detail,
            )
            for event_id, event in enumerate(reversed(events), start=1)
        ]
        archived: list[int] = []
        while len(texts) - HISTORY_CHUNK * len(archived) >= 2 * HISTORY_CHUNK:
            first = HISTORY_CHUNK * len(archived) + 1
            chunk = texts[first - 1 : first - 1 + HISTORY_CHUNK]
            self.kv.write(self.layout.history_chunk(number, first), {"events": chunk}, cas=None)
            archived.append(first)
        stale: list[int] = []
        if entry is not None:
            stale = [f for f in self._history_parts(path, entry)[1] if f not in archived]
        recent = texts[HISTORY_CHUNK * len(archived) :]
        self.kv.write(path, {"events": recent, "archived": archived}, cas=None)
        for first in stale:
            self.kv.remove(self.layout.history_chunk(number, first))

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
        """Let ``decide`` pick changes from the current record, then apply them.

        Read the page, ``decide``, write it with check-and-set; when another machine
        changed the page meanwhile, all of it again on the fresh record, so a
        read-modify-write never loses a concurrent update. ``secrets`` are written
        (check-and-set too) before the record, and only when there are changes; a secret
        written in an attempt whose record write then lost is put back if ``decide`` no
        longer wants a change. The page, the history and the secrets are read at once.

        A change of definition moves the secrets to the new definition's folder: written
        there before the record, removed from the old one after it.
        """
        wrote: _Written | None = None  # our secret write, and what it replaced
        claimed: str | None = None  # a new name's key claimed for this change
        moved_from: str | None = None  # the old place of secrets moved to a new definition
        done = False
        path = self._page_path(number)
        # One page at a time in this process: renewals of tokens on the same page run
        # side by side (renew --all), and would otherwise refuse each other's writes.
        with self._page_writer(path):
            try:
                for _ in self._attempts(f"token #{number}"):
                    assumed = self._assumed_secrets(number)
                    reads = [(path, False), (self.layout.history(number), False)]
                    if secrets is not None and assumed is not None:
                        reads.append((assumed, True))
                    page_entry, history, *secret = self.kv.read_all(reads)
                    page = self._page(path, page_entry)
                    current = self._current(page, number)
                    changes = decide(current)
                    if changes is None:
                        if wrote is not None:
                            self._put_back_secrets(wrote)
                        wrote = None
                        return current, False
                    unknown = set(changes) - MUTABLE_FIELDS
                    if unknown:
                        raise ValueError(f"fields cannot be changed: {sorted(unknown)}")
                    updated = replace(
                        current,
                        **changes,
                        updated_at=now,
                        updated_by=actor.user,
                        updated_unit=actor.unit,
                        updated_identity=actor.identity,
                    )
                    renamed = updated.name != current.name
                    wanted = self.layout.name(updated.name) if renamed else None
                    if claimed is not None and claimed != wanted:
                        self._release(claimed, number)
                        claimed = None
                    if wanted is not None and claimed is None:
                        self._claim(wanted, number, "name", updated.name)
                        claimed = wanted
                    if renamed:
                        self._refuse_name_as_code(
                            updated.name, number, self.kv.read(self.layout.code(updated.name))
                        )
                    text = record_text(updated)
                    source = self.layout.secrets(current.definition, number)
                    target = self.layout.secrets(updated.definition, number)
                    moved_from = source if source != target else None
                    try:
                        data: dict[str, Any] | None = None
                        held: Entry | None = None
                        if secrets is not None or moved_from is not None:
                            # Where the record says: another machine may have changed the
                            # definition since this one last read it.
                            if secret and assumed == source:
                                held = secret[0]
                            else:
                                held = self.kv.read(source, secret=True)
                            if secrets is not None:
                                data = secrets_data(secrets)
                            elif held is not None:
                                data = held.data  # moved as they are
                            if moved_from is not None:
                                held = self.kv.read(target, secret=True)  # what ours replaces
                        if wrote is not None and (data is None or wrote.path != target):
                            self._put_back_secrets(wrote)  # an earlier attempt's, elsewhere
                            wrote = None
                        if data is not None:
                            wrote = self._replace_secrets(target, data, wrote, held)
                        self._write_page(page, {**page.stored, str(number): text})
                    except CasConflict:
                        continue
                    done = True
                    break
            except BaseException:
                if not done:
                    if claimed is not None:
                        self._release(claimed, number)
                    if wrote is not None:
                        with suppress(TokenctlError):
                            self._put_back_secrets(wrote)
                raise
        self._definitions[number] = updated.definition
        if moved_from is not None:
            # The record names the new place now; a copy left here would be readable
            # by whoever may read the old definition's secrets: removed, as far as possible.
            with suppress(TokenctlError):
                self.kv.remove(moved_from, secret=True)
        if renamed:
            self._release(self.layout.name(current.name), number)
        self._append_event(
            number, updated.name, actor, now, event, outcome, detail, history=history
        )
        return token_from_text(number, text), True

    def delete(self, number: int, actor: Actor, now: datetime, *, detail: str | None) -> bool:
        """Remove the record and its secrets (``True`` if it had any); history keeps ``deleted``.

        The secrets go first: a failure there (a policy that denies it) leaves the token
        as it was. When the page changed before the record was removed (another machine
        may just have stored new secrets), both steps run again, so no secret outlives
        its record. Then the ``deleted`` event, then the name and code are released.
        """
        had_secrets = False
        path = self._page_path(number)
        for _ in self._attempts(f"token #{number}"):
            assumed = self._assumed_secrets(number)
            reads = [(path, False)] + ([(assumed, True)] if assumed is not None else [])
            page_entry, *secret = self.kv.read_all(reads)
            page = self._page(path, page_entry)
            current = self._current(page, number)
            secret_path = self.layout.secrets(current.definition, number)
            held = secret[0] if assumed == secret_path else self.kv.read(secret_path, secret=True)
            if held is not None:
                self.kv.remove(secret_path, secret=True)
                had_secrets = had_secrets or bool(held.data)
            kept = {key: text for key, text in page.stored.items() if key != str(number)}
            try:
                self._write_page(page, kept)
            except CasConflict:
                continue
            break
        self._definitions.pop(number, None)
        self._append_event(number, current.name, actor, now, "deleted", "ok", detail)
        self._release(self.layout.name(current.name), number)
        self._release(self.layout.code(current.authentication_code), number)
        with suppress(TokenctlError):  # a lease left is never read again: numbers stay unique
            self.kv.remove(self.layout.lease(number))
        with suppress(TokenctlError):  # nor are its notices (a key that is not: no error)
            self.kv.remove(self.layout.notices(number))
        return had_secrets

    # -- refresh leases and identity -----------------------------------------------------

    def token_calls(self, budget: str, since: datetime) -> list[TokenCall]:
        """The token calls every machine counted for ``budget`` since ``since``, oldest first."""
        path = self.layout.budget(budget)
        return [call for call in self._calls(path, self.kv.read(path)) if call.at >= since]

    def count_token_call(
        self,
        budget: str,
        call: TokenCall,
        decide: Callable[[Sequence[TokenCall]], datetime | None],
        *,
        keep_since: datetime,
    ) -> datetime | None:
        """Count a token call by check-and-set if ``decide`` allows it (see the protocol).

        One key per app and account holds the last day's calls of every machine: the
        budget is the provider's, not one host's.
        """
        path = self.layout.budget(budget)
        for _ in self._attempts("the token-call count"):
            entry = self.kv.read(path)
            calls = [kept for kept in self._calls(path, entry) if kept.at >= keep_since]
            refused_until = decide(calls)
            if refused_until is not None:
                return refused_until
            kept = [{"at": str(to_iso(made.at)), "token": made.token} for made in (*calls, call)]
            try:
                self.kv.write(path, {"calls": kept}, cas=0 if entry is None else entry.version)
            except CasConflict:
                continue  # another machine counted one meanwhile: decide again
            return None
        raise AssertionError("unreachable")  # pragma: no cover - _attempts raises

    def _calls(self, path: str, entry: Entry | None) -> list[TokenCall]:
        if entry is None:
            return []
        items = entry.data.get("calls")
        calls = []
        for item in items if isinstance(items, list) else [None]:
            at = _stored_time(item)
            token = item.get("token") if isinstance(item, dict) else None
            if at is None or not (token is None or type(token) is int):
                raise self._malformed(path, "its calls are not a list of {at, token}")
            calls.append(TokenCall(at, token))
        return sorted(calls, key=lambda made: made.at)

    def notices(self) -> list[NoticeMark]:
        """Every machine's webhook notice marks: ``P/notices/<number>``, one key a token.

        Only tokens that ever had something reported have a key (emptied, never removed,
        when nothing is left: removing it would race another machine's mark).
        """
        folder = self.layout.all_notices
        numbers = sorted(int(key) for key in self.kv.keys(folder) if key.isdigit())
        entries = self.kv.read_many([self.layout.notices(number) for number in numbers])
        found = []
        for number, entry in zip(numbers, entries, strict=True):
            for key, (state, at) in self._marks(number, entry).items():
                found.append(NoticeMark(number, key, state, at))
        return found

    def mark_notice(
        self, number: int, key: str, expected: str | None, state: str | None, now: datetime
    ) -> bool:
        """Set (or remove) one notice mark of token ``number`` by check-and-set."""
        path = self.layout.notices(number)
        for _ in self._attempts(f"the notices of token #{number}"):
            entry = self.kv.read(path)
            marks = self._marks(number, entry)
            if (marks[key][0] if key in marks else None) != expected:
                return False
            if state is None:
                marks.pop(key, None)
            else:
                marks[key] = (state, now)
            if not marks and entry is None:
                return True
            # Written by check-and-set even when nothing is left (an empty object, not a
            # removed key): a mark another machine wrote meanwhile is never lost, so a
            # notice is never sent twice.
            stored = {k: {"state": s, "at": str(to_iso(t))} for k, (s, t) in marks.items()}
            try:
                self.kv.write(path, {"notices": stored}, cas=0 if entry is None else entry.version)
            except CasConflict:
                continue
            return True
        raise AssertionError("unreachable")  # pragma: no cover - _attempts raises

    def _marks(self, number: int, entry: Entry | None) -> dict[str, tuple[str, datetime]]:
        if entry is None:
            return {}
        items = entry.data.get("notices")
        if not isinstance(items, dict):
            raise self._malformed(self.layout.notices(number), "its notices are not an object")
        marks = {}
        for key, item in items.items():
            state = item.get("state") if isinstance(item, dict) else None
            at = _stored_time(item)
            if not isinstance(state, str) or at is None:
                raise self._malformed(self.layout.notices(number), "a notice lacks state or at")
            marks[str(key)] = (state, at)
        return marks

    def webhook_secret(self, receiver: str) -> str | None:
        """The signing secret of the webhook ``receiver``: ``P/webhooks/<receiver>``."""
        entry = self.kv.read(self.layout.webhook(receiver), secret=True)
        value = None if entry is None else entry.data.get("secret")
        return value if isinstance(value, str) else None

    def set_webhook_secret(self, receiver: str, secret: str) -> None:
        """Store the signing secret of the webhook ``receiver`` (replacing one)."""
        self._ensure_meta()
        self.kv.write(self.layout.webhook(receiver), {"secret": secret}, cas=None, secret=True)

    def delete_webhook_secret(self, receiver: str) -> bool:
        """Remove the signing secret of the webhook ``receiver``; ``True`` if there was one."""
        path = self.layout.webhook(receiver)
        if self.kv.read(path, secret=True) is None:
            return False
        self.kv.remove(path, secret=True)
        return True

    def refresh_lease(self, number: int, holder: str, ttl: float) -> RefreshLease:
        """The lease ``P/leases/<number>`` (:mod:`.lease`): one machine refreshes at a time.

        It lasts ``ttl`` plus two outages' worth of retries (:attr:`KvStore.retry_for`):
        the holder's re-read before the provider call and its writes after it may each
        wait out one. A lease that ended while its holder waited would let another
        machine refresh with the refresh token the holder has just used, which a
        provider that detects reuse answers by revoking the grant.
        """
        from tokenctl.store.openbao.lease import KvLease

        lasting = ttl + 2 * self.kv.retry_for
        return KvLease(self.kv, self.layout.lease(number), holder, lasting)

    def actor_identity(self) -> str | None:
        """The store token's identity as the server knows it, looked up once per command.

        Its display name, then its role (AppRole's ``role_name``, JWT's ``role``) and its
        entity, or its policies when it has neither (a token made by hand):
        ``approle (role support; entity 5f0c…)``, ``root (policies root)``. ``None``
        when the server does not say (a token that may not look itself up).
        """
        if isinstance(self._identity, _Unread):
            try:
                found = self.kv.identity()
            except TokenctlError:
                found = {}
            self._identity = identity_text(found)
        return self._identity

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
        self._append_event(token.number, token.name, actor, now, event, outcome, detail)

    def _attempts(self, what: str) -> Iterator[int]:
        """Attempts of one check-and-set change, each after a short random wait."""
        for attempt in range(MAX_ATTEMPTS):
            if attempt:
                # Random, growing: writers that collided do not collide again in step.
                time.sleep(random.uniform(0, min(0.05, 0.001 * 2**attempt)))  # noqa: S311
            yield attempt
        raise InventoryError(
            f"{what} in the team inventory {self.where} kept changing under this change "
            f"({MAX_ATTEMPTS} attempts)",
            hint="many machines are changing the same tokens at once; run the command again",
        )

    def _allocate_number(self) -> int:
        """The next token number, taken from the shared counter by check-and-set."""
        for _ in self._attempts("the token counter"):
            if self._counter is None:
                entry = self.kv.read(self.layout.counter)
                self._counter = (
                    (1, 0) if entry is None else (self._next_number(entry), entry.version)
                )
            number, version = self._counter
            try:
                written = self.kv.write(self.layout.counter, {"next": number + 1}, cas=version)
            except CasConflict:
                self._counter = None  # another machine took one: read it again
                continue
            self._counter = (number + 1, written)
            return number
        raise AssertionError("unreachable")  # pragma: no cover - _attempts raises

    def _insert_record(self, number: int, text: str, page: _Page) -> None:
        """Put the new record ``text`` on its ``page`` (as read; read again on a conflict)."""
        for attempt in self._attempts(f"token #{number}"):
            if attempt:
                page = self._page(page.path, self.kv.read(page.path))
            if str(number) in page.stored:
                raise InventoryError(
                    f"token number {number} is already used in the team inventory {self.where}",
                    hint="its counter was set back; run `tokenctl doctor`",
                )
            try:
                self._write_page(page, {**page.stored, str(number): text})
            except CasConflict:
                continue
            return

    @contextmanager
    def _page_writer(self, path: str) -> Iterator[None]:
        """Hold this process's lock of the records page ``path`` for a read-change-write.

        Other machines' changes of the page are still met by check-and-set; this keeps
        the threads of one run (``renew --all`` on the team store) from refusing each
        other's writes of one page over and over.
        """
        with self._page_locks_lock:
            lock = self._page_locks.setdefault(path, threading.Lock())
        with lock:
            yield

    def _write_page(self, page: _Page, stored: dict[str, Any]) -> None:
        """Write ``stored`` as the new version of ``page`` (check-and-set on its version)."""
        self.kv.write(page.path, {"tokens": stored}, cas=page.version)

    def _append_event(
        self,
        number: int,
        name: str,
        actor: Actor,
        now: datetime,
        event: str,
        outcome: str,
        detail: str | None,
        *,
        history: Entry | _Unread | None = _UNREAD,
    ) -> None:
        """Append one event to token ``number``'s history.

        ``history`` is its key as the caller read it (``None``: there is none); read
        here when not given, and again when another wrote meanwhile. Event ids count up
        per token. Once the key holds ``2 * HISTORY_CHUNK`` events, its oldest
        ``HISTORY_CHUNK`` move to a chunk key of their own (written create-only first:
        whoever archives a chunk writes the same events into it).
        """
        path = self.layout.history(number)
        for _ in self._attempts(f"the history of token #{number}"):
            entry = self.kv.read(path) if isinstance(history, _Unread) else history
            history = _UNREAD  # a second attempt reads it again
            texts: list[Any] = []
            archived: list[int] = []
            if entry is not None:
                texts, archived = self._history_parts(path, entry)
            try:
                last = id_of_event(texts[-1]) if texts else 0
                if len(texts) >= 2 * HISTORY_CHUNK:
                    chunk, texts = texts[:HISTORY_CHUNK], texts[HISTORY_CHUNK:]
                    first = id_of_event(chunk[0])
                    with suppress(CasConflict):  # archived already, by another appender
                        self.kv.write(
                            self.layout.history_chunk(number, first), {"events": chunk}, cas=0
                        )
                    archived = [*archived, first]
            except MalformedRecordError as error:
                raise self._malformed(path, str(error)) from None
            texts = [*texts, event_text(last + 1, name, actor, now, event, outcome, detail)]
            version = 0 if entry is None else entry.version
            try:
                self.kv.write(path, {"events": texts, "archived": archived}, cas=version)
            except CasConflict:
                continue
            return

    # -- names and codes -----------------------------------------------------------------

    def _claim(self, path: str, number: int, field: str, value: str) -> None:
        """Make the key ``path`` say that ``value`` (a name or code) is token ``number``'s.

        Create-only; a key another token holds is a :class:`ConflictError`, one left
        behind by a cut-short change is taken over (check-and-set on its version).
        """
        for _ in self._attempts(f"the {field.replace('_', ' ')} {value!r}"):
            try:
                self.kv.write(path, {"number": number}, cas=0)
                return
            except CasConflict:
                pass
            entry = self.kv.read(path)
            if entry is None:
                continue  # released meanwhile: create it again
            owner = entry.data.get("number")
            if owner == number:
                return  # ours already (an earlier attempt of this change)
            holder = self._holds(entry, field, value)
            if holder is _PENDING:
                what = "name" if field == "name" else "authentication code"
                raise self._pending(f"the {what} {value!r}")
            if holder is not None:
                if field == "name":
                    raise ConflictError(f"a token named {value!r} already exists", hint=_NAME_HINT)
                raise ConflictError(
                    f"authentication code {value!r} is already in use", hint=_CODE_HINT
                )
            try:
                self.kv.write(path, {"number": number}, cas=entry.version)
                return
            except CasConflict:
                continue

    def _holds(self, entry: Entry, field: str, value: str) -> str | _Pending | None:
        """The name of the token that really holds a name or code key, else ``None``.

        A key holds when its token's record says so; while the record is not there, for
        ``ABANDONED_AFTER`` after it was claimed (``_PENDING``: an ``add`` under way).
        """
        owner = entry.data.get("number")
        token = self._find(owner) if type(owner) is int else None
        if token is not None:
            return token.name if getattr(token, field) == value else None
        try:
            created = from_iso(entry.created_time)
        except ValueError:
            created = None
        now = self.kv.server_time() or datetime.now(UTC)
        if created is None or now - created < ABANDONED_AFTER:
            return _PENDING
        return None

    def _pending(self, what: str) -> ConflictError:
        minutes = int(ABANDONED_AFTER.total_seconds() // 60)
        return ConflictError(
            f"{what} is being given to a token by an add that has not finished",
            hint="another tokenctl is adding that token, or an add of it was cut short; in "
            f"the latter case it is given up {minutes} minutes after it began: try again then",
        )

    # Names and codes share one look-up space (``resolve``), so a name may not be another
    # token's code, nor a code another's name. Checked after this change's own keys are
    # claimed (``entry`` read since): of two machines racing with the same text as a name
    # and as a code, at least one sees the other's key and gives up.

    def _refuse_name_as_code(self, name: str, number: int, entry: Entry | None) -> None:
        """Refuse ``name`` when ``entry``, its key as a code, is another token's."""
        if entry is not None and entry.data.get("number") != number:
            holder = self._holds(entry, "authentication_code", name)
            if holder is _PENDING:
                raise self._pending(f"the name {name!r}, as an authentication code,")
            if holder is not None:
                raise ConflictError(f"name {name!r} is the authentication code of token {holder!r}")

    def _refuse_code_as_name(self, code: str, number: int, entry: Entry | None) -> None:
        """Refuse ``code`` when ``entry``, its key as a name, is another token's."""
        if entry is not None and entry.data.get("number") != number:
            holder = self._holds(entry, "name", code)
            if holder is _PENDING:
                raise self._pending(f"the authentication code {code!r}, as a name,")
            if holder is not None:
                raise ConflictError(f"authentication code {code!r} is the name of another token")

    def _release(self, path: str, number: int) -> None:
        """Remove a name or code key if it is still token ``number``'s."""
        entry = self.kv.read(path)
        if entry is not None and entry.data.get("number") == number:
            self.kv.remove(path)

    def _give_back(self, number: int, claimed: list[str], wrote_secrets: str | None) -> None:
        """After a failed ``add``: release what it claimed and wrote, as far as possible.

        Not when its record was written after all (a reply lost on the way back).
        """
        with suppress(TokenctlError):
            if self._find(number) is not None:
                return
            for path in claimed:
                self._release(path, number)
            if wrote_secrets is not None:
                self.kv.remove(wrote_secrets, secret=True)

    # -- secrets -------------------------------------------------------------------------

    def ensure_secrets_writable(self) -> None:
        """Refuse an identity that may not change the records (``SecretStoreError``, exit 4).

        Asked before a secret is asked for or ``renew --all`` begins. OpenBao keeps the
        secrets, no OS keyring is needed; but a read-only identity (a CI role) would
        otherwise be refused only on its first write: after the pass code was typed, or
        after ``renew --all`` had the provider rotate refresh tokens it cannot store. The
        server's answer (``sys/capabilities-self``) is asked once; when it cannot be
        asked, the writes themselves are refused by the server, path named.
        """
        if self._may_write:
            return
        page = f"{self.mount}/data/{self.layout.page(0)}"
        try:
            granted = set(self.kv.capabilities([page]).get(page, ()))
        except TokenctlError:
            return  # not answered: the server refuses the write itself if it must
        if granted & {"root", "create", "update"}:
            self._may_write = True
            return
        raise SecretStoreError(
            f"this identity may not write the inventory at {self.mount}/{self.layout.records} "
            f"on the team store {self.address}",
            hint="ask the team store's administrator for a policy that grants it (the "
            "sample policies: docs/team.md)",
        )

    def secrets(self, number: int) -> TokenSecrets | None:
        """The secrets of token ``number``; ``None`` when none are stored."""
        entry = self._secret(number)
        return None if entry is None else secrets_from(entry.data)

    def _assumed_secrets(self, number: int) -> str | None:
        """Where token ``number``'s secrets are, by its definition as last read here."""
        definition = self._definitions.get(number)
        return None if definition is None else self.layout.secrets(definition, number)

    def _secret(self, number: int) -> Entry | None:
        """Token ``number``'s secrets as stored, under its definition (read when not known)."""
        known = self._definitions.get(number)
        if known is None:
            token = self._find(number)
            if token is None:
                return None
            known = token.definition
        entry = self.kv.read(self.layout.secrets(known, number), secret=True)
        if entry is None:
            # Another machine may have changed the token's definition since it was read.
            token = self._find(number)
            if token is not None and token.definition != known:
                return self.kv.read(self.layout.secrets(token.definition, number), secret=True)
        return entry

    def _write_secrets(self, path: str, data: dict[str, Any], *, expected: int) -> int:
        """Write secrets at ``path`` over version ``expected`` (0: none); the version."""
        return self.kv.write(path, data, cas=expected, secret=True)

    def _replace_secrets(
        self,
        path: str,
        data: dict[str, Any],
        earlier: _Written | None,
        entry: Entry | None,
    ) -> _Written:
        """Write new secrets at ``path`` over ``entry``, the current ones as read.

        ``earlier`` is this change's write in a previous attempt: while it is still the
        current version there, what it replaced stays the thing to put back.
        """
        version = 0 if entry is None else entry.version
        replaced: dict[str, Any] = {} if entry is None else entry.data
        if earlier is not None and earlier.path == path and earlier.version == version:
            replaced = earlier.replaced
        return _Written(path, self._write_secrets(path, data, expected=version), replaced)

    def _put_back_secrets(self, wrote: _Written) -> None:
        """Undo our secret write, unless another was written over it since.

        An empty object stands for "no secrets" (KV cannot delete by check-and-set).
        """
        with suppress(CasConflict):
            self._write_secrets(wrote.path, wrote.replaced, expected=wrote.version)

    def client_secret(self, definition: str, client_id: str) -> str | None:
        """The client secret of ``client_id`` in ``definition``; ``None`` when none is stored."""
        entry = self.kv.read(self.layout.client(definition, client_id), secret=True)
        value = None if entry is None else entry.data.get("client_secret")
        return value if isinstance(value, str) else None

    def set_client_secret(self, definition: str, client_id: str, secret: str) -> None:
        """Store the client secret of ``client_id`` in ``definition`` (replacing one)."""
        self._ensure_meta()
        path = self.layout.client(definition, client_id)
        self.kv.write(path, {"client_secret": secret}, cas=None, secret=True)

    def delete_client_secret(self, definition: str, client_id: str) -> bool:
        """Remove the stored client secret of ``client_id`` in ``definition``; ``True`` if any."""
        path = self.layout.client(definition, client_id)
        if self.kv.read(path, secret=True) is None:
            return False
        self.kv.remove(path, secret=True)
        return True

    def secret_summary(self, *, verify: bool) -> SecretSummary:
        """Refused: the team store has no data key of tokenctl's (OpenBao encrypts)."""
        self._no_data_key("key status")

    def rotate_key(self, progress: Callable[[int], None] | None = None) -> RotationResult:
        """Refused: OpenBao's own key is rotated by its operators (``bao operator rotate``)."""
        self._no_data_key("key rotate")

    def reset_key(self, actor: Actor, now: datetime) -> list[str]:
        """Refused: no data key of tokenctl's can be lost on the team store."""
        self._no_data_key("key reset")

    def _no_data_key(self, command: str) -> NoReturn:
        raise UsageError(
            f"`tokenctl {command}` is about the local store's data key; the team store "
            f"{self.address} has none: OpenBao encrypts every secret it keeps with its own keys",
            hint="OpenBao's operators rotate its encryption key (`bao operator rotate`)",
        )

    # -- maintenance ---------------------------------------------------------------------

    def check_integrity(self) -> list[str]:
        """Problems found in the team inventory; empty when it is sound.

        Every record is on its page, below the counter, and found by its name and code.
        """
        problems: list[str] = []
        counter = self.kv.read(self.layout.counter)
        next_number = 1 if counter is None else self._next_number(counter)
        names = set(self.kv.keys(self.layout.names))
        codes = set(self.kv.keys(self.layout.codes))
        for key in self.kv.keys(self.layout.records):
            path = f"{self.layout.records}/{key}"
            entry = self.kv.read(path)
            if entry is None:
                continue
            if not key.isdigit():
                problems.append(f"{path} is not a page of records")
                continue
            page = self._page(path, entry)
            for number, token in ((int(k), self._decode(page, k)) for k in page.stored):
                label = f"token #{number} {token.name!r}"
                if page_of(number) != int(key):
                    problems.append(f"{label} is on page {key}, not on page {page_of(number)}")
                if number >= next_number:
                    problems.append(f"{label} is not below the counter ({next_number})")
                if encode_segment(token.name) not in names:
                    problems.append(f"{label} has no name key: it is not found by its name")
                if encode_segment(token.authentication_code) not in codes:
                    problems.append(f"{label} has no code key: it is not found by its code")
        if problems and self._inventory_id is None:
            problems.append(f"{self.layout.meta} is missing")
        return problems

    @contextmanager
    def group_commit(self) -> Iterator[None]:
        """Nothing to group: every change is written to the server at once (see the protocol)."""
        yield

    def store_facts(self) -> Mapping[str, Any]:
        """The server (version, sealed), the store token's identity and what it may do here.

        What it may do is the server's answer for this inventory's paths
        (``sys/capabilities-self``): list and read records, read the secrets of every
        definition's tokens or of some definitions' (of the tokens there are), write. A
        sealed server says only that it is sealed.
        """
        health = self.kv.health()
        sealed = bool(health.get("sealed"))
        facts: dict[str, Any] = {
            "kind": "openbao",
            "address": self.address,
            "mount": self.mount,
            "path": self.prefix,
            "namespace": self.namespace,
            "auth": self.kv.keeper.facts(),
            "version": str(health.get("version") or "") or None,
            "initialized": bool(health.get("initialized", True)),
            "sealed": sealed,
            "identity": None,
            "may": None,
        }
        if sealed:
            return facts
        found = self.kv.identity()
        policies = found.get("policies")
        facts["identity"] = {
            "display_name": found.get("display_name"),
            "entity_id": found.get("entity_id") or None,
            "policies": sorted(str(p) for p in policies) if isinstance(policies, list) else [],
            "ttl": found.get("ttl"),
        }
        base, meta = f"{self.mount}/data/{self.prefix}", f"{self.mount}/metadata/{self.prefix}"
        # A list is checked on the folder with its slash, as the server checks it.
        records, listing = f"{base}/records/0", f"{meta}/records/"
        # "~" is no definition's name: a path only a grant of every definition's covers.
        secrets = f"{self.mount}/data/{self.layout.definition_secrets('~')}/1"
        definitions = self._definitions_in_use()
        of_definition = {
            definition: f"{self.mount}/data/{self.layout.secrets(definition, 1)}"
            for definition in definitions
        }
        granted = self.kv.capabilities([listing, records, secrets, *of_definition.values()])

        def may(path: str, *wanted: str) -> bool:
            have = set(granted.get(path, ()))
            return "root" in have or bool(have & set(wanted))

        facts["may"] = {
            "list_records": may(listing, "list"),
            "read_records": may(records, "read"),
            "read_secrets": may(secrets, "read"),
            "read_secrets_of": [d for d, path in of_definition.items() if may(path, "read")],
            "write": may(records, "create", "update") and may(secrets, "create", "update"),
        }
        return facts

    def _definitions_in_use(self) -> list[str]:
        """The definitions of the inventory's tokens; none when the records are not readable."""
        try:
            return sorted({token.definition for token in self.tokens()})
        except TokenctlError:  # what may not be read is told by the capabilities
            return []

    def describe(self) -> Mapping[str, Any]:
        """Facts for ``doctor``: where the team inventory is, its format, counts."""
        tokens = self.tokens()
        histories = [
            f"{self.layout.histories}/{key}"
            for key in self.kv.keys(self.layout.histories)
            if key.isdigit()  # a deleted token's history too, as the local store counts
        ]
        events = 0
        for path, entry in zip(histories, self.kv.read_many(histories), strict=True):
            if entry is not None:
                texts, archived = self._history_parts(path, entry)
                events += len(texts) + HISTORY_CHUNK * len(archived)
        return {
            "path": f"{self.address} {self.mount}/{self.prefix}",
            "address": self.address,
            "mount": self.mount,
            "prefix": self.prefix,
            "schema_version": FORMAT,
            "journal_mode": "OpenBao KV version 2",
            "page_size": PAGE_SIZE,
            "tokens": len(tokens),
            "history_events": events,
        }

    def close(self) -> None:
        """Close the connections to the server."""
        self.kv.close()

    def _malformed(self, path: str, problem: str) -> InventoryError:
        return InventoryError(
            f"{self.mount}/{path} on the team store {self.address} is malformed: {problem}",
            hint="restore an earlier version of that key (`bao kv rollback`), or "
            "`tokenctl doctor` to see what else is wrong",
        )


def _stored_time(item: Any) -> datetime | None:
    """The ``at`` time of a stored budget call or notice mark; ``None`` when it has none."""
    text = item.get("at") if isinstance(item, dict) else None
    try:
        return from_iso(text) if isinstance(text, str) else None
    except ValueError:
        return None
