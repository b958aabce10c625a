"""Private files and directories: 0700 directories, 0600 files, atomic replacement."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` and its missing parents readable only by the owner; return it.

    ``mkdir(parents=True)`` gives the parents it creates the umask's mode (0755, or 0777
    under umask 000), so each missing directory is created here, outermost first, and
    set to 0700 (mkdir honours the umask for the directory itself too). Directories
    that existed already are left as they are: they are not tokenctl's to change.
    """
    if path.is_dir():
        return path
    missing: list[Path] = []
    for directory in (path, *path.parents):
        if directory.is_dir():
            break
        missing.append(directory)
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=PRIVATE_DIR_MODE)
        except FileExistsError:
            if not directory.is_dir():
                raise
            continue  # another process created it meanwhile; it chose the mode
        directory.chmod(PRIVATE_DIR_MODE)
    return path


def ensure_private_file(path: Path) -> Path:
    """Create ``path`` empty with mode 0600 when it does not exist yet; return it."""
    ensure_private_dir(path.parent)
    try:
        # O_EXCL: only a file created here is ours to set to 0600 (the umask may have
        # taken owner bits away); an existing one keeps its mode, which doctor checks.
        descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, PRIVATE_FILE_MODE)
    except FileExistsError:
        return path
    try:
        os.chmod(path, PRIVATE_FILE_MODE)
    finally:
        os.close(descriptor)
    return path


def write_private_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so readers see the old or the new file, never half."""
    import tempfile  # only writers need it; readers start faster without

    ensure_private_dir(path.parent)
    descriptor, temporary = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
    )
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, PRIVATE_FILE_MODE)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    _sync_directory(path.parent)


def _sync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable (POSIX: fsync the directory itself)."""
    if sys.platform == "win32":
        # A directory cannot be opened as a file there (PermissionError), and NTFS
        # journals the rename itself: ``os.replace`` is MoveFileEx, durable as it is.
        return
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


#: How often a waiting :meth:`FileLock.acquire` tries again (the lock is polled, not
#: waited for in the kernel: Windows' ``LockFileEx`` and POSIX ``flock`` then behave alike).
LOCK_RETRY_SECONDS = 0.01


class FileLock:
    """An inter-process exclusive lock on one file, taken and released by hand.

    The OS lock is the one of the ``filelock`` package (``flock`` on POSIX, ``LockFileEx``
    on Windows) on a descriptor of our own: each :class:`FileLock` opens the file itself,
    so two objects on the same path exclude each other within one process too, any thread
    may release what another took, and the lock file keeps its 0600 mode and stays in
    place (``filelock.FileLock`` is per thread and re-entrant, and deletes the file on
    Windows). :func:`exclusive_lock` is the ``with`` form; async code polls
    :meth:`try_acquire` (a thread blocked in a wait would hold one of the few worker
    threads the lock's holder may need to finish) and calls :meth:`release`, which never
    waits.
    """

    def __init__(self, lock_path: Path) -> None:
        self.path = lock_path
        self._descriptor: int | None = None

    def acquire(self) -> None:
        """Wait until this process holds the lock."""
        self._take(wait=True)

    def try_acquire(self) -> bool:
        """Take the lock if it is free now; never waits (async code polls with this)."""
        return self._take(wait=False)

    def _take(self, *, wait: bool) -> bool:
        # Imported where a lock is taken: most commands take none and start faster without.
        from filelock import lock_descriptor

        try:
            descriptor = os.open(self.path, os.O_RDWR)
        except FileNotFoundError:  # the first lock of this file: made private first
            ensure_private_file(self.path)
            descriptor = os.open(self.path, os.O_RDWR)
        try:
            taken = lock_descriptor(descriptor, blocking=wait, poll_interval=LOCK_RETRY_SECONDS)
        except BaseException:
            os.close(descriptor)
            raise
        if not taken:
            os.close(descriptor)
            return False
        self._descriptor = descriptor
        return True

    def release(self) -> None:
        """Let the next process have the lock; releasing a lock not held does nothing."""
        from filelock import unlock_descriptor

        descriptor, self._descriptor = self._descriptor, None
        if descriptor is None:
            return
        try:
            unlock_descriptor(descriptor)
        finally:
            os.close(descriptor)  # closing drops the lock too, should the unlock have failed


@contextlib.contextmanager
def exclusive_lock(lock_path: Path) -> Iterator[None]:
    """Hold an inter-process exclusive lock on ``lock_path`` for the ``with`` block."""
    lock = FileLock(lock_path)
    lock.acquire()
    try:
        yield
    finally:
        lock.release()


def mode_bits_decide_access() -> bool:
    """Tell whether a file's mode bits (0600, 0700) say who may use it on this system.

    On Windows they do not: Python maps only the read-only attribute onto them, and
    access is decided by the file's ACL, inherited from the per-user profile directory
    that holds tokenctl's files (docs/files.md).
    """
    return sys.platform != "win32"


def is_private(path: Path) -> bool:
    """Tell whether group and others have no access to ``path`` (by its POSIX mode)."""
    return (path.stat().st_mode & 0o077) == 0
