"""The one object that carries every dependency a command needs.

Like gh's Factory: commands never construct stores, clocks or streams themselves; they
ask the context, and tests hand in a context whose parts are swapped for fakes.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import cache, cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from tokenctl.iostreams import IOStreams
from tokenctl.models import Actor
from tokenctl.paths import Paths, resolve_paths

if TYPE_CHECKING:
    from tokenctl.config import Config, StoreKind
    from tokenctl.definitions.model import Definition
    from tokenctl.definitions.registry import DefinitionSet
    from tokenctl.inventory import Inventory
    from tokenctl.oauth.client import ClientKey, ProviderClient
    from tokenctl.oauth.provider import Transport
    from tokenctl.secrets import Keyring


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _default_keyring(paths: Paths) -> Keyring:
    from tokenctl.secrets.keyring_store import OsKeyring

    return OsKeyring(backend_cache=paths.keyring_backend_cache)


def _default_inventory(paths: Paths, keyring: Callable[[], Keyring]) -> Inventory:
    from tokenctl.inventory.sqlite import SqliteInventory

    return SqliteInventory(paths.inventory_file, keyring, locks_dir=paths.locks_dir)


def wsl_browser_command(
    environ: Mapping[str, str],
    proc: Path = Path("/proc"),
    which: Callable[[str], str | None] | None = None,
) -> list[str] | None:
    """The command that opens a URL in Windows' browser when tokenctl runs under WSL.

    ``None`` when ``BROWSER`` is set (the user's choice comes first, :mod:`webbrowser`
    honours it), when this is not WSL, or when neither ``wslview`` (wslu, which knows the
    Windows default browser) nor ``explorer.exe`` is on the ``PATH``. A WSL distribution
    rarely has a Linux browser, and one under WSLg is not the one the user is signed in
    with.
    """
    if environ.get("BROWSER") or not _is_wsl(environ, proc):
        return None
    if which is None:
        import shutil

        which = shutil.which
    for program in ("wslview", "explorer.exe"):
        found = which(program)
        if found:
            return [found]
    return None


def _is_wsl(environ: Mapping[str, str], proc: Path) -> bool:
    """Tell whether this Linux runs under WSL 1 or 2 (its kernel names Microsoft)."""
    if environ.get("WSL_DISTRO_NAME"):
        return True
    for name in ("sys/kernel/osrelease", "version"):
        try:
            text = (proc / name).read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        if "microsoft" in text.lower():
            return True
    return False


def _open_browser(url: str) -> bool:
    """Open ``url`` in the user's browser without blocking.

    :mod:`webbrowser` (so ``BROWSER`` is honoured) or, under WSL, Windows' browser
    (:func:`wsl_browser_command`). Both may wait for the browser command to exit; the
    login must keep serving its loopback listener meanwhile, so the call runs in a daemon
    thread.
    """
    import threading

    command = wsl_browser_command(os.environ) if sys.platform == "linux" else None
    if command is not None:
        threading.Thread(target=_run_browser_command, args=([*command, url],), daemon=True).start()
        return True
    import webbrowser

    threading.Thread(target=webbrowser.open, args=(url,), daemon=True).start()
    return True


def _run_browser_command(argv: list[str]) -> None:
    """Run a browser command and wait for it (in its thread), its output not shown.

    ``explorer.exe`` exits with 1 even when it opened the page, so the exit code says
    nothing; the login prints the URL anyway.
    """
    import subprocess

    with contextlib.suppress(OSError):
        subprocess.run(  # argv is a found program and the URL: no shell
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )


@cache  # one process, one user: renew --all asks once per token
def _os_user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        if sys.platform == "win32":  # no numeric user ids there; getuser rarely fails
            return "unknown"
        return f"uid:{os.getuid()}"


@cache
def _host_name() -> str:
    import socket

    return socket.gethostname() or "unknown"


@dataclass
class AppContext:
    """Streams, paths, clock and lazily opened stores for one invocation."""

    io: IOStreams
    environ: Mapping[str, str]
    home: Path | None = None
    debug: bool = False
    clock: Callable[[], datetime] = _utc_now
    keyring_factory: Callable[[Paths], Keyring] = _default_keyring
    #: Opens the inventory; it calls the keyring getter only when a secret is needed.
    inventory_factory: Callable[[Paths, Callable[[], Keyring]], Inventory] = _default_inventory
    open_browser: Callable[[str], bool] = _open_browser
    sleep: Callable[[float], None] = time.sleep
    monotonic: Callable[[], float] = time.monotonic
    user_name: Callable[[], str] = _os_user
    host_name: Callable[[], str] = _host_name
    #: The HTTP transport under every provider call; ``None``: the network (tests: a mock).
    http_transport: Transport | None = None
    _opened: list[Inventory] = field(default_factory=list, init=False, repr=False)
    _clients: dict[ClientKey, ProviderClient] = field(default_factory=dict, init=False, repr=False)
    _actor: Actor | None = field(default=None, init=False, repr=False)

    @classmethod
    def from_environment(cls) -> AppContext:
        """The context of a real process: system streams and ``os.environ``."""
        environ = dict(os.environ)
        return cls(io=IOStreams.system(environ), environ=environ)

    def with_options(self, *, home: Path | None, debug: bool) -> AppContext:
        """A copy with the global command-line options applied."""
        return replace(
            self, home=home if home is not None else self.home, debug=debug or self.debug
        )

    @cached_property
    def paths(self) -> Paths:
        """Resolved directories (``--home``, ``TOKENCTL_HOME`` or platform defaults)."""
        return resolve_paths(self.home, self.environ)

    @cached_property
    def config(self) -> Config:
        """Settings from ``config.toml``."""
        from tokenctl.config import load_config

        return load_config(self.paths.config_file)

    @cached_property
    def definitions(self) -> DefinitionSet:
        """Built-in and user definitions."""
        from tokenctl.definitions.registry import load_definitions

        return load_definitions(self.paths.definitions_file)

    @cached_property
    def inventory(self) -> Inventory:
        """The token inventory, opened on first use: the store config.toml chooses.

        The local SQLite file, or for ``[store] kind = "openbao"`` the team store (its
        store token read, or its login made, now; kept in memory only). A factory handed
        in (tests) wins.
        """
        factory = self.inventory_factory
        if factory is _default_inventory:
            factory = self._configured_store()
        inventory = factory(self.paths, lambda: self.keyring)
        self._opened.append(inventory)
        return inventory

    def _configured_store(self) -> Callable[[Paths, Callable[[], Keyring]], Inventory]:
        """The inventory factory of the store ``[store]`` in config.toml names."""
        from tokenctl.config import StoreKind

        store = self.config.store
        if store.kind is StoreKind.LOCAL:
            return _default_inventory
        from tokenctl.store.connection import connection
        from tokenctl.store.openbao import connected_inventory_factory

        found = connection(store, self.environ, transport=self.http_transport)
        return connected_inventory_factory(found)

    def open_store(self, kind: StoreKind) -> Inventory:
        """The inventory of the store ``kind``, whichever one config.toml chooses.

        The local store is this home's SQLite file; the team store is the one ``[store]``
        (and the environment) names, even while ``kind`` is ``"local"``. For ``store
        copy``, which reads one store and writes the other; closed with the context.
        """
        from tokenctl.config import StoreKind

        factory: Callable[[Paths, Callable[[], Keyring]], Inventory] = _default_inventory
        if kind is not StoreKind.LOCAL:
            from tokenctl.store.connection import connection
            from tokenctl.store.openbao import connected_inventory_factory

            factory = connected_inventory_factory(connection(self.config.store, self.environ))
        inventory = factory(self.paths, lambda: self.keyring)
        self._opened.append(inventory)
        return inventory

    @cached_property
    def keyring(self) -> Keyring:
        """The OS keyring, created on first use (only commands that need a secret)."""
        return self.keyring_factory(self.paths)

    def provider_client(
        self, definition: Definition, attributes: Mapping[str, str]
    ) -> ProviderClient:
        """The provider client for ``definition`` filled from ``attributes``, built once.

        Its endpoints are resolved and its credentials read once for this invocation,
        however many tokens (refresh, probe, revocation) share it.
        """
        from tokenctl.oauth.client import ProviderClient, client_key

        key = client_key(definition, attributes)
        client = self._clients.get(key)
        if client is None:
            client = ProviderClient.build(
                definition,
                attributes,
                client_secret=lambda name, client_id: self.inventory.client_secret(name, client_id),
                transport=self.http_transport,
            )
            self._clients[key] = client
        return client

    def now(self) -> datetime:
        """The current time, UTC."""
        return self.clock()

    def actor(self) -> Actor:
        """Who is acting: OS user, the unit (config.toml or the host name), store identity.

        The store identity is the team store's entity or role (``None`` on the local
        store); asking for it opens the inventory, which every change needs anyway.
        Looked up once per command (``renew --all`` records hundreds of changes).
        """
        if self._actor is None:
            self._actor = Actor(
                user=self.user_name(),
                unit=self.config.unit or self.host_name(),
                identity=self.inventory.actor_identity(),
            )
        return self._actor

    def close(self) -> None:
        """Close what was opened."""
        for inventory in self._opened:
            inventory.close()
        self._opened.clear()
        self._clients.clear()
        if "keyring" in self.__dict__:  # only a keyring that was created holds anything
            self.keyring.close()
