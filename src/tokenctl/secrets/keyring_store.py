"""The OS keyring through the ``keyring`` package, refusing plaintext and null backends."""

from __future__ import annotations

import threading
import time
from typing import Any

from tokenctl.errors import SecretStoreError
from tokenctl.models import TokenSecrets
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
    "tokenctl keeps secrets only in a secure OS keyring. On Linux run and unlock a Secret "
    "Service (GNOME Keyring or KWallet); on a headless machine see docs/keyring.md. Check "
    "with `tokenctl doctor`."
)


def backend_name(backend: Any) -> str:
    """The fully qualified class name of a keyring backend."""
    cls = type(backend)
    return f"{cls.__module__}.{cls.__qualname__}"


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


class KeyringSecretStore:
    """A :class:`~tokenctl.secrets.SecretStore` on the ``keyring`` package.

    ``keyring`` is imported on first use only, so commands that need no secret never
    load it (and never trigger an unlock prompt).
    """

    #: Attempts for a write, and the pause before each retry (seconds). A refresh whose
    #: rotated refresh token cannot be stored loses the connection, so a write that a busy
    #: Secret Service refuses once is tried again before giving up.
    WRITE_ATTEMPTS = 4
    RETRY_PAUSE = 0.25

    def __init__(self, service: str = KEYRING_SERVICE) -> None:
        self.service = service
        self._backend: Any = None
        # gnome-keyring has been seen to crash under concurrent D-Bus clients of one
        # process (renew --all); calls from this process go to it one at a time.
        self._serial = threading.Lock()

    def _secure_backend(self) -> Any:
        if self._backend is None:
            try:
                import keyring

                backend = keyring.get_keyring()
            except Exception as error:
                raise SecretStoreError(
                    f"the OS keyring is unavailable ({type(error).__name__})", hint=FIX_HINT
                ) from None
            reason = insecure_reason(backend)
            if reason is not None:
                raise SecretStoreError(reason, hint=FIX_HINT)
            self._backend = backend
        return self._backend

    def _fail(self, action: str, error: Exception) -> SecretStoreError:
        # The keyring's own message describes the backend state (locked, no D-Bus, ...);
        # it never carries the value we tried to store.
        detail = str(error).strip() or type(error).__name__
        return SecretStoreError(f"could not {action} the OS keyring: {detail}", hint=FIX_HINT)

    def ensure_available(self) -> None:
        """Raise ``SecretStoreError`` unless the keyring backend is a secure one."""
        self._secure_backend()

    def get(self, ref: str) -> TokenSecrets | None:
        """The secrets stored under ``ref``, or ``None`` when there are none."""
        backend = self._secure_backend()
        try:
            with self._serial:
                stored = backend.get_password(self.service, ref)
        except Exception as error:
            raise self._fail("read from", error) from None
        if stored is None:
            return None
        try:
            return TokenSecrets.from_json(stored)
        except (ValueError, TypeError):
            raise SecretStoreError(
                f"the keyring entry {self.service}/{ref} is not a tokenctl secret",
                hint="renew the token to write its secret again",
            ) from None

    def set(self, ref: str, secrets: TokenSecrets) -> None:
        """Store ``secrets`` under ``ref``, replacing what was there."""
        backend = self._secure_backend()
        value = secrets.to_json()
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

    def report(self) -> BackendReport:
        """Name the backend and say whether it is secure and usable, without raising."""
        try:
            import keyring

            backend = keyring.get_keyring()
        except Exception as error:
            return BackendReport(name="(none)", secure=False, problem=type(error).__name__)
        name = backend_name(backend)
        reason = insecure_reason(backend)
        if reason is not None:
            return BackendReport(name=name, secure=False, problem=reason)
        probe_ref = "tokenctl-doctor-probe"
        try:
            backend.set_password(self.service, probe_ref, "probe")
            works = backend.get_password(self.service, probe_ref) == "probe"
            backend.delete_password(self.service, probe_ref)
        except Exception as error:
            return BackendReport(name=name, secure=True, problem=f"not usable: {error}")
        if not works:
            return BackendReport(
                name=name, secure=True, problem="wrote an entry but read back none"
            )
        return BackendReport(name=name, secure=True)
