"""Fast fakes for unit tests. Every feature is also tested against the real peers."""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from typer.testing import CliRunner

from tokenctl.cli.app import build_app
from tokenctl.context import AppContext
from tokenctl.errors import SecretStoreError
from tokenctl.iostreams import IOStreams
from tokenctl.models import TokenSecrets
from tokenctl.secrets import KEYRING_SERVICE, BackendReport, parse_entry

START = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)

#: Modules that `list`, `show`, `check` and shell completion must not import.
HEAVY = (
    "authlib",
    "httpx2",
    "httpx",
    "keyring",
    "secretstorage",
    "jeepney",
    "pydantic",
    "hvac",  # the team store's client: only the team store imports it
    "requests",  # hvac's transport
)


class MemoryKeyring:
    """An in-memory Keyring; ``available=False`` behaves like a missing keyring."""

    def __init__(self, available: bool = True) -> None:
        self.entries: dict[str, str] = {}
        self.available = available

    def ensure_available(self) -> None:
        if not self.available:
            raise SecretStoreError("the OS keyring is unavailable (fake)", hint="start one")

    def get_text(self, ref: str) -> str | None:
        self.ensure_available()
        return self.entries.get(ref)

    def legacy(self, ref: str) -> TokenSecrets | None:
        """A legacy (tokenctl 0.x) entry, parsed."""
        return parse_entry(KEYRING_SERVICE, ref, self.get_text(ref))

    def set_text(self, ref: str, value: str) -> None:
        self.ensure_available()
        self.entries[ref] = value

    def delete(self, ref: str) -> bool:
        self.ensure_available()
        return self.entries.pop(ref, None) is not None

    def close(self) -> None:
        pass

    def entry_names(self) -> list[str] | None:
        self.ensure_available()
        return sorted(self.entries)

    def report(self) -> BackendReport:
        if not self.available:
            return BackendReport("fake", secure=False, problem="unavailable")
        return BackendReport("fake", secure=True)


@dataclass
class Clock:
    """A clock the test moves by hand."""

    now: datetime = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


@dataclass
class Run:
    """What one CLI invocation produced."""

    exit_code: int
    stdout: str
    stderr: str
    exception: BaseException | None

    def json(self) -> Any:
        import json

        return json.loads(self.stdout)


@dataclass
class Cli:
    """Invokes the real Typer app in-process with an injected AppContext."""

    home: Path
    keyring: MemoryKeyring = field(default_factory=MemoryKeyring)
    clock: Clock = field(default_factory=Clock)
    environ: dict[str, str] = field(default_factory=dict)
    browser: Callable[[str], Any] | None = None
    last_stderr: str = ""
    #: Under every provider call instead of the network (an ``httpx2.MockTransport``).
    transport: Any = None
    #: Opens the inventory instead of the home's SQLite file (``AppContext.inventory_factory``).
    inventory_factory: Any = None

    def stored(self, ref: str) -> TokenSecrets | None:
        """The secrets sealed in this home's inventory for token ``ref``."""
        return stored_secrets(self.home, ref, self.keyring)

    def _open_browser(self, url: str) -> bool:
        """Like a real browser launcher: return at once, the 'browser' works in a thread."""
        if self.browser is None:
            return False
        threading.Thread(target=self.browser, args=(url,), daemon=True).start()
        return True

    def __call__(
        self,
        *args: str,
        input: str | TextIO = "",
        tty: bool = False,
        color: bool = False,
        hidden_answer: str | None = None,
    ) -> Run:
        out, err = io.StringIO(), io.StringIO()
        streams = IOStreams(
            stdin=io.StringIO(input) if isinstance(input, str) else input,
            stdout=out,
            stderr=err,
            stdin_tty=tty,
            stdout_tty=tty,
            stderr_tty=tty,
            color=color,
            width=200,
        )
        if hidden_answer is not None:
            streams.hidden_prompt = lambda label, stream: hidden_answer
        swapped = (
            {} if self.inventory_factory is None else {"inventory_factory": self.inventory_factory}
        )
        ctx = AppContext(
            **swapped,
            io=streams,
            environ={"TOKENCTL_HOME": str(self.home), **self.environ},
            clock=self.clock,
            keyring_factory=lambda paths: self.keyring,
            open_browser=self._open_browser,
            user_name=lambda: "tester",
            host_name=lambda: "testhost",
            http_transport=self.transport,
        )
        result = CliRunner().invoke(build_app(), list(args), obj=ctx, catch_exceptions=True)
        self.last_stderr = err.getvalue()
        # Typer writes its own usage errors to the runner's streams; ours go to `streams`.
        return Run(
            exit_code=result.exit_code,
            stdout=out.getvalue() + result.stdout,
            stderr=err.getvalue() + result.stderr,
            exception=None if isinstance(result.exception, SystemExit) else result.exception,
        )


def stored_secrets(home: Path, ref: str, keyring: Any) -> TokenSecrets | None:
    """The secrets the inventory of ``home`` holds for token ``ref``, opened with ``keyring``."""
    from tokenctl.inventory.sqlite import SqliteInventory

    inventory = SqliteInventory(home / "inventory.sqlite3", lambda: keyring)
    try:
        return inventory.secrets(inventory.resolve(ref).number)
    finally:
        inventory.close()


def sealed_rows(home: Path) -> list[tuple[Any, ...]]:
    """Every row of the inventory's sealed token secrets, as stored (ciphertext)."""
    import sqlite3

    connection = sqlite3.connect(home / "inventory.sqlite3")
    try:
        return connection.execute("SELECT * FROM token_secrets ORDER BY number").fetchall()
    finally:
        connection.close()
