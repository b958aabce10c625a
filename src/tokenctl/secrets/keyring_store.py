"""The OS keyring through the ``keyring`` package, refusing plaintext and null backends."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

from tokenctl.errors import SecretStoreError
from tokenctl.secrets import KEYRING_SERVICE, BackendReport

#: Backends that store nothing, fail everything, or keep secrets in plain files.
INSECURE_BACKENDS = frozenset(
    {
        "keyring.backends.null.Keyring",
        "keyring.backends.fail.Keyring",
        "keyrings.alt.file.PlaintextKeyring",
        "keyrings.alt.file.EncryptedKeyring",
        "keyrings.alt.Gnome.Keyring",
        "keyrings.alt.Google.DocsKeyring",
        "keyrings.alt.pyfs.PlaintextKeyring",
        "keyrings.alt.pyfs.EncryptedKeyring",
        "keyrings.alt.Windows.EncryptedKeyring",
        "keyrings.alt.multi.MultipartKeyringWrapper",
    }
)

FIX_HINT = (
    "tokenctl keeps the key that encrypts every secret only in a secure OS keyring. On "
    "Linux run and unlock a Secret "
    "Service (GNOME Keyring or KWallet); on a headless machine see docs/keyring.md. Check "
    "with `tokenctl doctor`."
)


def backend_name(backend: Any) -> str:
    """The fully qualified class name of a keyring backend."""
    cls = type(backend)
    return f"{cls.__module__}.{cls.__qualname__}"


#: keyring's Secret Service backend, used through :class:`HeldSecretService`.
SECRET_SERVICE = "keyring.backends.SecretService.Keyring"  # noqa: S105 - a class name
#: The chainer is not remembered: it asks every backend anyway.
_CHAINER = "keyring.backends.chainer.ChainerBackend"
#: Where keyring's own backends live; only those are remembered.
_OWN_BACKENDS = "keyring.backends."


def _environment_key() -> list[Any]:
    """What keyring's choice of backend depends on, cheaply: a change means choose again.

    Installing or removing a package (a keyring plugin among them) changes the mtime of
    its ``sys.path`` directory; the desktop decides between KWallet and the Secret Service.
    ``sys.path[0]`` (the script's directory, or the working directory) is left out: it
    changes all the time and holds no installed packages.
    """
    stamps = []
    for entry in sys.path[1:]:
        try:
            stamps.append([entry, os.stat(entry or ".").st_mtime_ns])
        except OSError:
            continue
    return [1, sys.prefix, os.environ.get("XDG_CURRENT_DESKTOP", ""), stamps]


def _cached_backend_name(cache_file: Path, key: list[Any]) -> str | None:
    try:
        cached = json.loads(cache_file.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):  # a damaged record: detect again
        return None
    if not isinstance(cached, dict) or cached.get("key") != key:
        return None
    name = cached.get("backend")
    return name if isinstance(name, str) else None


def _remember_backend(cache_file: Path, key: list[Any], name: str) -> None:
    from tokenctl.fsutil import write_private_atomic

    try:
        payload = json.dumps({"backend": name, "key": key})
        write_private_atomic(cache_file, payload.encode("utf-8"))
    except OSError:  # a read-only home only costs the next command the full detection
        pass


def _rememberable(name: str) -> bool:
    """Only keyring's own backends are remembered (and so ever loaded from the record).

    The record is a file: loading an arbitrary module named there would run its code.
    A third-party plugin is simply detected again each time, as keyring does.
    """
    return name.startswith(_OWN_BACKENDS) and name != _CHAINER


def _load_remembered(name: str) -> Any:
    """The remembered backend, as ``keyring.core.load_keyring`` loads one by name."""
    import importlib

    from keyring.backend import KeyringBackend

    if not _rememberable(name):
        raise ValueError(f"{name} is not one of keyring's own backends")
    module_name, _, class_name = name.rpartition(".")
    backend_class = getattr(importlib.import_module(module_name), class_name)
    if not (isinstance(backend_class, type) and issubclass(backend_class, KeyringBackend)):
        raise TypeError(f"{name} is not a keyring backend")
    backend_class.priority  # noqa: B018 - keyring's check: raises when it does not work here
    return backend_class()


def detect_backend(cache_file: Path | None, *, refresh: bool = False) -> Any:
    """The backend ``keyring`` itself would use, its choice remembered in ``cache_file``.

    keyring chooses by importing every installed backend plugin and asking each whether it
    works: ~60 ms on Linux (its macOS backend runs the C compiler looking for frameworks),
    a third of ``tokenctl token``. The choice only changes when packages are installed or
    the desktop changes (see ``_environment_key``), so it is kept and reused while the
    chosen backend still says it works; otherwise keyring chooses again. The user's own
    choice (``PYTHON_KEYRING_BACKEND``, ``keyringrc.cfg``) always comes first, as in
    keyring. ``refresh`` (``doctor``) skips the remembered choice.
    """
    import keyring
    from keyring import core

    configured = core.load_env() or core.load_config()
    if configured is not None:
        return configured
    key = _environment_key()
    name = None if cache_file is None or refresh else _cached_backend_name(cache_file, key)
    if name is not None:
        try:
            return _load_remembered(name)
        except Exception:  # noqa: S110 - no longer installed or no longer working: choose again
            pass
    backend = keyring.get_keyring()
    chosen = backend_name(backend)
    if cache_file is not None and _rememberable(chosen) and insecure_reason(backend) is None:
        _remember_backend(cache_file, key, chosen)
    return backend


def insecure_reason(backend: Any) -> str | None:
    """Why a backend must not hold secrets, or ``None`` when it may."""
    name = backend_name(backend)
    if name in INSECURE_BACKENDS or name.startswith("keyrings.alt."):
        return f"the keyring backend {name} is not a secure OS keyring"
    children = getattr(backend, "backends", None)
    if name == "keyring.backends.chainer.ChainerBackend":
        if not children:
            return "no keyring backend is available"
        for child in children:
            reason = insecure_reason(child)
            if reason is not None:
                return reason
    return None


class OsKeyring:
    """The :class:`~tokenctl.secrets.Keyring` on the ``keyring`` package.

    ``keyring`` is imported on first use only, so commands that need no secret never
    load it (and never trigger an unlock prompt).
    """

    #: Attempts for a write, and the pause before each retry (seconds). A data key that
    #: cannot be stored stops the first secret of an inventory from being kept, so a write
    #: that a busy Secret Service refuses once is tried again before giving up.
    WRITE_ATTEMPTS = 4
    RETRY_PAUSE = 0.25

    def __init__(
        self, service: str = KEYRING_SERVICE, *, backend_cache: Path | None = None
    ) -> None:
        self.service = service
        #: Where the choice of keyring backend is remembered (see :func:`detect_backend`).
        self.backend_cache = backend_cache
        self._backend: Any = None
        # gnome-keyring has been seen to crash under concurrent D-Bus clients of one
        # process (renew --all); calls from this process go to it one at a time.
        self._serial = threading.Lock()
        self._creating = threading.Lock()

    def _secure_backend(self) -> Any:
        with self._creating:
            if self._backend is None:
                try:
                    detected = detect_backend(self.backend_cache)
                except Exception as error:
                    raise SecretStoreError(
                        f"the OS keyring is unavailable ({type(error).__name__})", hint=FIX_HINT
                    ) from None
                self._backend = self._make_backend(detected)
        return self._backend

    @staticmethod
    def _make_backend(detected: Any) -> Any:
        """``detected`` as tokenctl uses it: refused when insecure, the Secret Service held."""
        reason = insecure_reason(detected)
        if reason is not None:
            raise SecretStoreError(reason, hint=FIX_HINT)
        if backend_name(detected) == SECRET_SERVICE:
            from tokenctl.secrets.held_secret_service import HeldSecretService

            return HeldSecretService.holding(detected)
        return detected

    def _fail(self, action: str, error: Exception) -> SecretStoreError:
        # The keyring's own message describes the backend state (locked, no D-Bus, ...);
        # it never carries the value we tried to store.
        detail = str(error).strip() or type(error).__name__
        return SecretStoreError(f"could not {action} the OS keyring: {detail}", hint=FIX_HINT)

    def ensure_available(self) -> None:
        """Raise ``SecretStoreError`` unless the keyring backend is a secure one."""
        self._secure_backend()

    def get_text(self, ref: str) -> str | None:
        """The entry under ``ref`` as stored, or ``None`` when there is none."""
        backend = self._secure_backend()
        try:
            with self._serial:
                stored: str | None = backend.get_password(self.service, ref)
        except Exception as error:
            raise self._fail("read from", error) from None
        return stored

    def set_text(self, ref: str, value: str) -> None:
        """Store ``value`` under ``ref``, replacing what was there."""
        backend = self._secure_backend()
        for attempt in range(1, self.WRITE_ATTEMPTS + 1):
            try:
                with self._serial:
                    backend.set_password(self.service, ref, value)
                return
            except Exception as error:
                if attempt == self.WRITE_ATTEMPTS:
                    raise self._fail("write to", error) from None
                time.sleep(self.RETRY_PAUSE * attempt)

    def delete(self, ref: str) -> bool:
        """Remove the entry; ``False`` when there was none."""
        backend = self._secure_backend()
        from keyring.errors import PasswordDeleteError

        try:
            with self._serial:
                backend.delete_password(self.service, ref)
        except PasswordDeleteError:
            return False
        except Exception as error:
            raise self._fail("delete from", error) from None
        return True

    def entry_names(self) -> list[str] | None:
        """Every entry's ref under this service, where the backend can list them.

        Only the Secret Service can (it searches items by attribute); for any other
        backend the answer is ``None``, and ``doctor`` says it cannot look for orphans.
        """
        backend = self._secure_backend()
        list_names = getattr(backend, "usernames", None)
        if not callable(list_names):
            return None
        try:
            with self._serial:
                names: list[str] = list_names(self.service)
        except Exception as error:
            raise self._fail("list the entries of", error) from None
        return names

    def close(self) -> None:
        """Release what the backend holds open (the Secret Service connection)."""
        close = getattr(self._backend, "close", None)
        if callable(close):
            with self._serial:
                close()

    def report(self) -> BackendReport:
        """Name the backend and say whether it is secure and usable, without raising."""
        try:
            backend = detect_backend(self.backend_cache, refresh=True)
        except Exception as error:
            return BackendReport(name="(none)", secure=False, problem=type(error).__name__)
        name = backend_name(backend)
        reason = insecure_reason(backend)
        if reason is not None:
            return BackendReport(name=name, secure=False, problem=reason)
        # The probe goes the way every other command's keyring calls go.
        used = self._make_backend(backend)
        probe_ref = "tokenctl-doctor-probe"
        try:
            with self._serial:
                used.set_password(self.service, probe_ref, "probe")
                works = used.get_password(self.service, probe_ref) == "probe"
                used.delete_password(self.service, probe_ref)
        except Exception as error:
            return BackendReport(name=name, secure=True, problem=f"not usable: {error}")
        finally:
            close = getattr(used, "close", None)
            if callable(close):
                close()
        if not works:
            return BackendReport(
                name=name, secure=True, problem="wrote an entry but read back none"
            )
        return BackendReport(name=name, secure=True)
