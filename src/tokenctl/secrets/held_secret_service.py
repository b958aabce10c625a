"""keyring's Secret Service backend, holding one D-Bus connection for the whole run.

keyring's own backend connects to the session bus, finds the collection and negotiates
an encrypted session (a Diffie-Hellman exchange) for every single call, and hangs up
after it. For one ``tokenctl token`` that is fine; for ``renew --all`` over hundreds of
tokens it is most of the time (a read took ~14 ms, a write ~25 ms), and gnome-keyring was
seen to stop serving after thousands of such short connections in a row. This subclass
does the same calls with the same item attributes and labels, so entries stay readable
by ``keyring``, ``secret-tool`` and Seahorse, but keeps the connection and its session
until :meth:`close`. Callers serialise calls (``OsKeyring`` holds a lock): a
jeepney connection is not thread-safe.
"""

from __future__ import annotations

import contextlib
from typing import Any

from keyring.backends.SecretService import Keyring as SecretServiceKeyring
from keyring.errors import PasswordDeleteError


class HeldSecretService(SecretServiceKeyring):
    """The Secret Service backend of ``keyring`` with one connection for many calls."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]
        self._collection: Any = None

    @classmethod
    def holding(cls, backend: SecretServiceKeyring) -> HeldSecretService:
        """The same backend, configuration included (collection, scheme), held open."""
        held = cls()
        held.__dict__.update(vars(backend))
        held._collection = None
        return held

    def get_preferred_collection(self) -> Any:
        """The collection keyring would use, connected once and unlocked when needed."""
        collection = self._collection
        if collection is not None:
            try:
                if not collection.is_locked():
                    return collection
            except Exception:  # noqa: S110 - the connection is gone: connect again below
                pass
        self.close()
        # keyring's own lookup: preferred or default collection, unlocked with a prompt.
        collection = super().get_preferred_collection()  # type: ignore[no-untyped-call]
        if collection.session is None:
            # One encrypted session for every item, not a key exchange per secret read.
            from secretstorage.util import open_session

            collection.session = open_session(collection.connection)
        self._collection = collection
        return collection

    def _call(self, action: Any) -> Any:
        reused = self._collection is not None
        try:
            return action(self.get_preferred_collection())
        except Exception:
            # The held connection or its session may be stale: a restarted daemon keeps
            # the bus connection working but forgets every session. Once more on a fresh
            # connection, as keyring's own backend would have made (every call here is
            # idempotent: a write replaces, a read reads).
            self.close()
            if not reused:
                raise
        try:
            return action(self.get_preferred_collection())
        except Exception:
            self.close()
            raise

    def get_password(self, service: str, username: str) -> str | None:
        """The secret of ``username`` in ``service``, or ``None``."""

        def read(collection: Any) -> str | None:
            for item in collection.search_items(self._query(service, username)):
                self.unlock(item)  # type: ignore[no-untyped-call]
                secret: bytes = item.get_secret()
                return secret.decode("utf-8")
            return None

        result: str | None = self._call(read)
        return result

    def set_password(self, service: str, username: str, password: str) -> None:
        """Store ``password``, replacing an entry with the same attributes."""
        attributes = self._query(service, username, application=self.appid)
        label = f"Password for '{username}' on '{service}'"
        self._call(
            lambda collection: collection.create_item(label, attributes, password, replace=True)
        )

    def delete_password(self, service: str, username: str) -> None:
        """Delete the entry; :class:`PasswordDeleteError` when there is none."""

        def delete(collection: Any) -> bool:
            for item in collection.search_items(self._query(service, username)):
                item.delete()
                return True
            return False

        if not self._call(delete):
            raise PasswordDeleteError("No such password!")

    def usernames(self, service: str) -> list[str]:
        """The username of every item of ``service``, found by its attributes (no secret read)."""
        key = self.schemes[self.scheme]["username"]

        def search(collection: Any) -> list[str]:
            found = (
                item.get_attributes().get(key)
                for item in collection.search_items(self._query(service))
            )
            return sorted({name for name in found if name})

        result: list[str] = self._call(search)
        return result

    def close(self) -> None:
        """Hang up the held connection, if any."""
        collection, self._collection = self._collection, None
        if collection is not None:
            with contextlib.suppress(OSError):
                collection.connection.close()
