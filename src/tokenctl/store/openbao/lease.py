"""The team store's refresh lease: one machine at a time refreshes a token.

A token whose provider rotates refresh tokens (and revokes the grant when a used one
comes back) must be refreshed by one tokenctl at a time across every machine. Before
the token endpoint is called, the refresher writes ``P/leases/<number>``::

    {"holder": "alice@laptop pid 4242 …", "ttl": 150.0, "expires_at": "…"}

by check-and-set: create-only (``cas=0``) while the key does not exist, else on the
version of a lease that is released or expired. Two machines never both win a version.
Release writes ``{"released": true}`` over the holder's own version (check-and-set
again): a lease that expired and was taken over is never released by its old holder.
The key stays (one per token refreshed, a few versions deep) and is removed with its
token.

A lease has expired ``ttl`` seconds after the server wrote it, by the server's clock
(``sys/health``, compared with the key's creation time, both the server's); only when
the server tells no time, by the holder's ``expires_at`` and this machine's clock.
"""

from __future__ import annotations

import random
import time
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from typing import Any

from tokenctl.store.openbao.kv import CasConflict, Entry, KvStore
from tokenctl.timeutil import from_iso, to_iso


class KvLease:
    """:class:`~tokenctl.inventory.RefreshLease` on the team store: one KV key."""

    #: Waiters look again this often (with a little randomness, so they do not step
    #: together); each look is one read while the lease is known to live.
    poll_seconds = 0.1
    #: Taken and given up by asking the server: off an event loop.
    remote = True

    def __init__(self, kv: KvStore, path: str, holder: str, ttl: float) -> None:
        self.kv = kv
        self.path = path
        self.holder = holder
        self.ttl = ttl
        #: The version of the key this process wrote when it took the lease.
        self._held: int | None = None
        #: ``(version, monotonic deadline)`` of another's lease found alive: until then
        #: the same version needs no look at the server's clock.
        self._alive: tuple[int, float] | None = None
        self.poll_seconds = KvLease.poll_seconds * random.uniform(0.8, 1.2)  # noqa: S311

    def try_acquire(self) -> bool:
        """Take the lease if no one holds it now (released, expired or never written)."""
        if self._held is not None:
            return True
        entry = self.kv.read(self.path)
        if entry is not None and self._lives(entry):
            return False
        expected = 0 if entry is None else entry.version
        now = datetime.now(UTC)
        data: dict[str, Any] = {
            "holder": self.holder,
            "ttl": self.ttl,
            "expires_at": to_iso(now + timedelta(seconds=self.ttl)),
        }
        if entry is not None and not entry.data.get("released"):
            data["took_over_from"] = str(entry.data.get("holder") or "")
        try:
            self._held = self.kv.write(self.path, data, cas=expected)
        except CasConflict:
            return False  # another machine took it first
        return True

    def release(self) -> None:
        """Mark the lease released, if the key is still the version this process wrote."""
        held, self._held = self._held, None
        if held is None:
            return
        # A conflict: it expired and was taken over meanwhile; it is the new holder's.
        with suppress(CasConflict):
            self.kv.write(self.path, {"released": True, "holder": self.holder}, cas=held)

    def _lives(self, entry: Entry) -> bool:
        """Whether ``entry`` is another's lease that has not expired yet."""
        if entry.data.get("released"):
            return False
        if self._alive is not None and self._alive[0] == entry.version:
            return time.monotonic() < self._alive[1]
        ttl = entry.data.get("ttl")
        if not isinstance(ttl, int | float) or isinstance(ttl, bool) or ttl <= 0:
            return False  # not a lease this tokenctl wrote: nothing to wait for
        server_now = self.kv.server_time()
        created = _moment(entry.created_time)
        if server_now is not None and created is not None:
            # The health time is cut to whole seconds: behind, never ahead, so a lease
            # may live up to a second longer, never shorter.
            left = (created + timedelta(seconds=float(ttl)) - server_now).total_seconds()
        else:
            expires = _moment(entry.data.get("expires_at"))
            if expires is None:
                return False
            left = (expires - datetime.now(UTC)).total_seconds()
        if left <= 0:
            return False
        self._alive = (entry.version, time.monotonic() + left)
        return True


def _moment(text: Any) -> datetime | None:
    """An RFC 3339 time (the server's have nanoseconds), or ``None``."""
    if not isinstance(text, str) or not text:
        return None
    try:
        return from_iso(text)
    except ValueError:
        return None
