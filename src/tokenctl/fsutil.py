"""Private files and directories: 0700 directories, 0600 files, atomic replacement."""

from __future__ import annotations

import contextlib
import os
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
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


class FileLock:
    """An inter-process exclusive lock on one file, taken and released by hand.

    :func:`exclusive_lock` is the ``with`` form; async code polls :meth:`try_acquire`
    (a thread blocked in a wait would hold one of the few worker threads the lock's
    holder may need to finish) and calls :meth:`release`, which never waits.
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
        import fcntl  # POSIX only: imported where a lock is taken, not with the module

        ensure_private_file(self.path)
        descriptor = os.open(self.path, os.O_RDWR)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            return False
        except BaseException:
            os.close(descriptor)
            raise
        self._descriptor = descriptor
        return True

    def release(self) -> None:
        """Let the next process have the lock."""
        import fcntl

        descriptor, self._descriptor = self._descriptor, None
        if descriptor is None:
            return
        try:
            fcntl.flock(descriptor, fcntl.LOCK_UN)
        finally:
            os.close(descriptor)


@contextlib.contextmanager
def exclusive_lock(lock_path: Path) -> Iterator[None]:
    """Hold an inter-process exclusive lock on ``lock_path`` for the ``with`` block."""
    lock = FileLock(lock_path)
    lock.acquire()
    try:
        yield
    finally:
        lock.release()


def is_private(path: Path) -> bool:
    """Tell whether group and others have no access to ``path``."""
    return (path.stat().st_mode & 0o077) == 0
