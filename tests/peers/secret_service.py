"""A real, private freedesktop Secret Service (gnome-keyring) for the test suite.

``start_secret_service(tmp_dir)`` starts

1. a private ``dbus-daemon`` (session-type bus on its own unix socket under *tmp_dir*,
   never the system bus or the user's session bus) whose configuration has **no service
   activation**, so nothing can silently spawn an unmanaged ``gnome-keyring-daemon``; and
2. ``gnome-keyring-daemon --foreground --unlock --components=secrets`` with a fresh
   ``XDG_DATA_HOME`` and ``XDG_RUNTIME_DIR`` and a generated password on stdin, which
   creates and unlocks a brand-new ``login`` keyring (the default collection).

``--foreground`` works together with ``--unlock`` (gnome-keyring 42), so the ``Popen``
pid *is* the daemon: nothing daemonizes and there is no pid to hunt for. Both processes
lead their own process group and get ``PR_SET_PDEATHSIG`` so the kernel kills them if
the test process dies without cleaning up. ``stop()`` terminates both process groups,
reaps them, then sweeps ``/proc`` for any ``gnome-keyring-daemon``/``dbus-daemon``
whose environment names our private runtime directory (normally there is none).

The returned :class:`SecretService` exposes ``env`` (variables that point clients at it)
and an *independent reader* built on ``secret-tool`` (libsecret, written in C), so tests
can check what tokenctl (python ``keyring`` -> SecretStorage -> jeepney) really stored.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import secrets
import select
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

#: Backend pinned through ``PYTHON_KEYRING_BACKEND`` for processes under test.
KEYRING_BACKEND = "keyring.backends.SecretService.Keyring"
#: Debian packages that provide the binaries this harness needs.
APT_PACKAGES = "dbus gnome-keyring libsecret-tools"

_REQUIRED_BINARIES = ("dbus-daemon", "gnome-keyring-daemon", "secret-tool")
_SECRETS_BUS_NAME = "org.freedesktop.secrets"
_SECRETS_PATH = "/org/freedesktop/secrets"
_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 3.0
_CLI_TIMEOUT = 10.0
# sun_path holds 107 bytes; gnome-keyring adds "/runtime/keyring/control" to the dir.
_MAX_SOCKET_DIR_LEN = 80
# Variables that could point the daemons at somebody else's session.
_SCRUBBED_ENV = frozenset(
    {"DISPLAY", "WAYLAND_DISPLAY", "DBUS_SESSION_BUS_ADDRESS", "GNOME_KEYRING_CONTROL"}
)

_BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""


class SecretServiceUnavailable(RuntimeError):  # noqa: N818 - reads better at call sites
    """The binaries needed to run a real Secret Service are not installed."""


class SecretServiceError(RuntimeError):
    """The Secret Service could not be started or queried."""


@dataclass(frozen=True)
class SecretItem:
    """One item as reported by ``secret-tool search --all``."""

    path: str
    label: str
    secret: str
    attributes: dict[str, str] = field(default_factory=dict)


def missing_binaries() -> list[str]:
    """Return the required binaries that are not on ``PATH``."""
    return [name for name in _REQUIRED_BINARIES if shutil.which(name) is None]


class SecretService:
    """A running private Secret Service; create it with :func:`start_secret_service`."""

    def __init__(self, base_dir: Path, socket_dir: Path, password: str) -> None:
        self.base_dir = base_dir
        self.socket_dir = socket_dir
        self.password = password
        self.runtime_dir = socket_dir / "runtime"
        self.data_dir = base_dir / "data"
        self.bus_socket = socket_dir / "bus"
        self.bus_address = ""
        self.dbus_log = base_dir / "dbus-daemon.log"
        self.keyring_log = base_dir / "gnome-keyring-daemon.log"
        self._procs: list[subprocess.Popen[bytes]] = []
        self._own_socket_dir = socket_dir != base_dir

    # ------------------------------------------------------------------ public API
    @property
    def env(self) -> dict[str, str]:
        """Environment variables that point a client (in-process or child) at us."""
        return {
            "DBUS_SESSION_BUS_ADDRESS": self.bus_address,
            "XDG_RUNTIME_DIR": str(self.runtime_dir),
            "XDG_DATA_HOME": str(self.data_dir),
            "PYTHON_KEYRING_BACKEND": KEYRING_BACKEND,
        }

    @property
    def pids(self) -> list[int]:
        """Pids of the daemons we started (dbus-daemon first), while running."""
        return [proc.pid for proc in self._procs]

    def child_env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """Return *base* (default ``os.environ``) overlaid with :attr:`env`."""
        merged = dict(os.environ if base is None else base)
        merged.update(self.env)
        return merged

    def lookup(self, service: str, username: str) -> str | None:
        """Read a secret with ``secret-tool lookup`` (independent of python keyring).

        Returns ``None`` when no item has these ``service``/``username`` attributes.
        """
        proc = self._secret_tool("lookup", "service", service, "username", username)
        if proc.returncode == 0:
            return proc.stdout
        if proc.returncode == 1 and not proc.stdout and not proc.stderr.strip():
            return None
        raise SecretServiceError(
            f"secret-tool lookup failed (rc={proc.returncode}): {proc.stderr.strip()}"
        )

    def items(self, service: str, **attributes: str) -> list[SecretItem]:
        """List every item whose ``service`` attribute (and *attributes*) match.

        Uses ``secret-tool search --all``. It prints ``label``/``secret`` to stdout and
        the ``attribute.*`` lines to stderr, flushing every write, so the two streams are
        read merged, in order. Items are sorted by object path (creation order).
        """
        args = ["search", "--all", "service", service]
        for key, value in attributes.items():
            args += [key, value]
        proc = self._secret_tool(*args, merge_stderr=True)
        if proc.returncode != 0:
            raise SecretServiceError(
                f"secret-tool search failed (rc={proc.returncode}): {proc.stdout.strip()}"
            )
        return parse_search_output(proc.stdout)

    def store(self, service: str, username: str, secret: str, label: str | None = None) -> None:
        """Store a secret with ``secret-tool store``, as another application would."""
        proc = self._secret_tool(
            "store",
            f"--label={label or f'{username}@{service}'}",
            "service",
            service,
            "username",
            username,
            stdin=secret,
        )
        if proc.returncode != 0:
            raise SecretServiceError(f"secret-tool store failed: {proc.stderr.strip()}")

    def clear(self) -> int:
        """Delete every item in every collection; return how many were deleted."""
        from jeepney import new_method_call

        deleted = 0
        with self._bus() as conn:
            for collection in _get_property(conn, _SECRETS_PATH, "Service", "Collections"):
                for path in _get_property(conn, collection, "Collection", "Items"):
                    item = _secrets_address(path, "Item")
                    (prompt,) = _call(conn, new_method_call(item, "Delete"))
                    if prompt != "/":
                        raise SecretServiceError(f"deleting {path} wants a prompt ({prompt})")
                    deleted += 1
        return deleted

    def is_running(self) -> bool:
        """Return whether both daemons are still alive."""
        return len(self._procs) == 2 and all(p.poll() is None for p in self._procs)

    def stop(self) -> None:
        """Stop every process we started and remove the private socket directory."""
        for proc in reversed(self._procs):  # gnome-keyring first, then the bus
            _terminate_group(proc)
        self._procs.clear()
        _sweep_strays(str(self.runtime_dir))
        if self._own_socket_dir:
            shutil.rmtree(self.socket_dir, ignore_errors=True)

    def restart_keyring(self) -> None:
        """Stop gnome-keyring and start it again on the same bus and data (as after a crash).

        Clients keep their bus connection, but every Secret Service session they opened
        is gone with the old daemon.
        """
        keyring_proc = self._procs.pop()  # started after the bus
        _terminate_group(keyring_proc)
        self._start_keyring()
        self._wait_until_unlocked()

    def __enter__(self) -> SecretService:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ internals
    def _secret_tool(
        self, *args: str, stdin: str = "", merge_stderr: bool = False
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["secret-tool", *args],
            input=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE,
            text=True,
            env=self.child_env(),
            timeout=_CLI_TIMEOUT,
            check=False,
        )

    @contextlib.contextmanager
    def _bus(self) -> Iterator[Any]:
        from jeepney.io.blocking import open_dbus_connection

        conn = open_dbus_connection(bus=self.bus_address)
        try:
            yield conn
        finally:
            conn.close()

    def _start(self) -> None:
        if self.data_dir.exists():  # an old keyring would not unlock with a new password
            raise SecretServiceError(f"{self.base_dir} was used before; pass a fresh directory")
        self.data_dir.mkdir(parents=True)
        self.runtime_dir.mkdir(parents=True)
        self.runtime_dir.chmod(0o700)  # gnome-keyring insists on a private runtime dir
        self._start_bus()
        self._start_keyring()
        self._wait_until_unlocked()

    def _daemon_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED_ENV}
        env["XDG_RUNTIME_DIR"] = str(self.runtime_dir)
        env["XDG_DATA_HOME"] = str(self.data_dir)
        if self.bus_address:
            env["DBUS_SESSION_BUS_ADDRESS"] = self.bus_address
        return env

    def _popen(
        self, argv: list[str], log: Path, *, stdin: int, pipe_stdout: bool = False
    ) -> subprocess.Popen[bytes]:
        with log.open("ab") as log_file:
            proc = subprocess.Popen(
                argv,
                stdin=stdin,
                stdout=subprocess.PIPE if pipe_stdout else log_file,
                stderr=log_file,
                env=self._daemon_env(),
                cwd=self.base_dir,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        self._procs.append(proc)
        return proc

    def _start_bus(self) -> None:
        config = self.base_dir / "bus.conf"
        config.write_text(_BUS_CONFIG.format(socket=escape(str(self.bus_socket))))
        proc = self._popen(
            [
                "dbus-daemon",
                f"--config-file={config}",
                "--nofork",
                "--nopidfile",
                "--print-address=1",
            ],
            self.dbus_log,
            stdin=subprocess.DEVNULL,
            pipe_stdout=True,
        )
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], _START_TIMEOUT)
        line = proc.stdout.readline().decode().strip() if ready else ""
        proc.stdout.close()  # dbus-daemon prints nothing else to stdout
        if not line.startswith("unix:"):
            raise SecretServiceError(
                f"dbus-daemon did not print its address (exit code {proc.poll()}); "
                f"log: {_log_tail(self.dbus_log)}"
            )
        self.bus_address = line

    def _start_keyring(self) -> None:
        proc = self._popen(
            ["gnome-keyring-daemon", "--foreground", "--unlock", "--components=secrets"],
            self.keyring_log,
            stdin=subprocess.PIPE,
        )
        assert proc.stdin is not None
        proc.stdin.write(self.password.encode())
        proc.stdin.close()  # EOF ends the password

    def _wait_until_unlocked(self) -> None:
        """Poll the bus until the default collection exists and is unlocked."""
        deadline = time.monotonic() + _START_TIMEOUT
        last_error = "not checked yet"
        while time.monotonic() < deadline:
            dead = [str(p.args[0]) for p in self._procs if p.poll() is not None]  # type: ignore[index]
            if dead:
                raise SecretServiceError(
                    f"{', '.join(dead)} exited during start-up; logs: "
                    f"{_log_tail(self.keyring_log)} | {_log_tail(self.dbus_log)}"
                )
            try:
                if self._default_collection_unlocked():
                    return
                last_error = "default collection missing or locked"
            except Exception as exc:  # keep polling until the deadline
                last_error = f"{type(exc).__name__}: {exc}"
            time.sleep(0.02)
        raise SecretServiceError(
            f"gnome-keyring did not become ready in {_START_TIMEOUT}s ({last_error}); "
            f"log: {_log_tail(self.keyring_log)}"
        )

    def _default_collection_unlocked(self) -> bool:
        from jeepney import new_method_call
        from jeepney.bus_messages import message_bus

        with self._bus() as conn:
            (owned,) = _call(conn, message_bus.NameHasOwner(_SECRETS_BUS_NAME))
            if not owned:
                return False
            service = _secrets_address(_SECRETS_PATH, "Service")
            (path,) = _call(conn, new_method_call(service, "ReadAlias", "s", ("default",)))
            if path == "/":
                return False
            return not _get_property(conn, path, "Collection", "Locked")


def start_secret_service(tmp_dir: str | os.PathLike[str]) -> SecretService:
    """Start a private, unlocked gnome-keyring Secret Service under *tmp_dir*.

    Raises :class:`SecretServiceUnavailable` when the binaries are missing and
    :class:`SecretServiceError` when the daemons fail to start. The caller must call
    ``stop()`` (or use the result as a context manager).
    """
    missing = missing_binaries()
    if missing:
        raise SecretServiceUnavailable(
            f"missing {', '.join(missing)}; install with: "
            f"apt-get install -y --no-install-recommends {APT_PACKAGES}"
        )
    base_dir = Path(tmp_dir).resolve()
    base_dir.mkdir(parents=True, exist_ok=True)
    socket_dir = base_dir
    if len(str(base_dir)) > _MAX_SOCKET_DIR_LEN:  # unix socket paths must be short
        socket_dir = Path(tempfile.mkdtemp(prefix="tokenctl-ss-"))
    service = SecretService(base_dir, socket_dir, password=secrets.token_urlsafe(24))
    try:
        service._start()
    except BaseException:
        service.stop()
        raise
    return service


def parse_search_output(text: str) -> list[SecretItem]:
    """Parse the merged stdout+stderr of ``secret-tool search --all``.

    Each item is ``[path]``, ``label = ...``, ``secret = ...`` (possibly spanning lines),
    ``created = ...``, ``modified = ...``, optionally ``schema = ...``, then
    ``attribute.NAME = VALUE`` lines.
    """
    items: list[SecretItem] = []
    current: dict[str, Any] | None = None
    in_secret = False

    def flush() -> None:
        if current is not None:
            items.append(
                SecretItem(
                    path=current["path"],
                    label=current.get("label", ""),
                    secret=current.get("secret", ""),
                    attributes=current["attributes"],
                )
            )

    for line in text.split("\n"):
        header = re.fullmatch(r"\[(/.*)\]", line)
        if header and not in_secret:  # a secret is always followed by "created = "
            flush()
            current = {"path": header.group(1), "attributes": {}}
            continue
        if current is None:
            continue
        key, sep, value = line.partition(" = ")
        if in_secret and not (sep and key == "created"):
            current["secret"] += "\n" + line
            continue
        in_secret = False
        if not sep:
            continue
        if key == "secret":
            current["secret"] = value
            in_secret = True
        elif key.startswith("attribute."):
            current["attributes"][key.removeprefix("attribute.")] = value
        else:
            current[key] = value
    flush()
    return sorted(items, key=lambda item: _path_sort_key(item.path))


def _path_sort_key(path: str) -> tuple[int, str]:
    tail = path.rsplit("/", 1)[-1]
    return (int(tail), path) if tail.isdigit() else (1 << 62, path)


def _log_tail(path: Path, limit: int = 800) -> str:
    try:
        return path.read_text(errors="replace")[-limit:].strip() or "(empty)"
    except OSError:
        return "(no log)"


def _die_with_parent() -> None:
    """``preexec_fn``: have the kernel SIGTERM the child when the test process dies."""
    with contextlib.suppress(Exception):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)


def _secrets_address(path: str, interface: str) -> Any:
    """Return a jeepney address for *path* on ``org.freedesktop.Secret.<interface>``."""
    from jeepney import DBusAddress

    return DBusAddress(path, _SECRETS_BUS_NAME, f"org.freedesktop.Secret.{interface}")


def _get_property(conn: Any, path: str, interface: str, name: str) -> Any:
    """Read one D-Bus property of a Secret Service object."""
    from jeepney import Properties

    ((_signature, value),) = _call(conn, Properties(_secrets_address(path, interface)).get(name))
    return value


def _call(conn: Any, message: Any) -> tuple[Any, ...]:
    """Send *message* on a jeepney blocking connection; return the reply body."""
    from jeepney import MessageType

    reply = conn.send_and_get_reply(message, timeout=_CLI_TIMEOUT)
    if reply.header.message_type == MessageType.error:
        raise SecretServiceError(f"D-Bus error {reply.header.fields}: {reply.body}")
    return tuple(reply.body)


def _terminate_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group led by *proc*, SIGKILL it if it lingers, and reap it.

    The group is only signalled while its leader is unreaped, so its id cannot have been
    recycled for an unrelated process group.
    """
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)  # start_new_session=True: pgid == pid
        try:
            proc.wait(timeout=_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            continue
        return  # reaped; anything else of ours is caught by _sweep_strays


def _sweep_strays(runtime_dir: str) -> None:
    """SIGKILL any keyring/bus daemon whose environment names our private runtime dir."""
    needle = f"XDG_RUNTIME_DIR={runtime_dir}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() not in {"gnome-keyring-d", "dbus-daemon"}:
                continue
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                os.kill(int(entry.name), signal.SIGKILL)
        except (OSError, ValueError):
            continue
