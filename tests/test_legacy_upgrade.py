"""The upgrade from tokenctl 0.x: one keyring entry per token, moved into the inventory.

``tests/data/store-0.x`` was written by tokenctl 0.x itself (see its make_store.py): an
inventory of schema v3 and the keyring entries it made. The first command that needs a
secret moves every entry into the inventory, sealed; killed at any point and run again,
nothing is lost and nothing is left twice.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.fakes import Cli, MemoryKeyring, sealed_rows
from tests.proc import tokenctl
from tokenctl.inventory.sqlite import SqliteInventory
from tokenctl.secrets.keyring_store import OsKeyring

STORE = Path(__file__).parent / "data" / "store-0.x"
#: What each token of the fixture holds (its pass code), by name.
PASS_CODES = {"acme-api": "pc-acme-0x", "twinfield-ws": "pc-basic-0x", "paused": "pc-paused-0x"}
CLIENT_ENTRY = "definition-acme-books-client-tokenctl-basic"


class Killed(BaseException):
    """Stands for SIGKILL: no handler of tokenctl's runs, nothing is cleaned up."""


def legacy_entries(home: Path) -> dict[str, str]:
    """The fixture's keyring entries, naming the inventory at ``home`` as 0.x did."""
    inventory = str((home / "inventory.sqlite3").resolve())
    entries: dict[str, str] = json.loads((STORE / "keyring.json").read_text())
    return {ref: text.replace("@INVENTORY@", inventory) for ref, text in entries.items()}


def install_store(home: Path, store_entry: Any) -> dict[str, str]:
    """Copy the 0.x store to ``home`` and its entries into a keyring; the entries."""
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    for name in ("inventory.sqlite3", "definitions.toml"):
        shutil.copy(STORE / name, home / name)
        (home / name).chmod(0o600)
    entries = legacy_entries(home)
    for ref, text in entries.items():
        store_entry(ref, text)
    return entries


def token_refs() -> dict[str, str]:
    """Legacy entry name of each token of the fixture, by token name."""
    connection = sqlite3.connect(STORE / "inventory.sqlite3")
    try:
        return dict(connection.execute("SELECT name, secret_ref FROM tokens").fetchall())
    finally:
        connection.close()


def assert_moved_once(cli: Cli) -> None:
    """Every pass code is sealed in the inventory, once, and no legacy entry is left."""
    for name, pass_code in PASS_CODES.items():
        stored = cli.stored(name)
        assert stored is not None and stored.pass_code == pass_code, name
    assert len(sealed_rows(cli.home)) == len(PASS_CODES)
    left = [ref for ref in cli.keyring.entries if ref.startswith("token-")]
    assert left == []
    shown = [cli("show", name, "--json").json()["token"]["secret"] for name in PASS_CODES]
    assert all(secret["keyring_entry"] is None for secret in shown)


def test_the_fixture_is_the_0x_layout():
    """What the tests below upgrade: schema v3, one entry per token, facts in each entry."""
    connection = sqlite3.connect(STORE / "inventory.sqlite3")
    try:
        assert connection.execute("PRAGMA user_version").fetchone() == (3,)
        assert connection.execute(
            "SELECT seq FROM sqlite_sequence WHERE name = 'tokens'"
        ).fetchone() == (5,)
    finally:
        connection.close()
    entries = json.loads((STORE / "keyring.json").read_text())
    refs = token_refs()
    assert {refs[name] for name in PASS_CODES} | {CLIENT_ENTRY} == set(entries)
    assert json.loads(entries[refs["acme-api"]]) == {
        "pass_code": "pc-acme-0x",
        "definition": "api-key",
        "inventory": "@INVENTORY@",
    }


def test_list_show_and_check_read_a_0x_store_without_the_keyring(tmp_path):
    cli = Cli(home=tmp_path / "home", keyring=MemoryKeyring(available=False))
    install_store(cli.home, lambda ref, text: None)
    listed = cli("list", "--json")
    assert listed.exit_code == 0, listed.stderr
    assert [t["name"] for t in listed.json()["tokens"]] == [
        "acme-api",
        "twinfield-ws",
        "paused",
        "books-later",
    ]
    shown = cli("show", "acme-api", "--json").json()["token"]
    assert shown["secret"]["keyring_entry"] == token_refs()["acme-api"]
    assert "until its first use moves it into the inventory" in cli("show", "acme-api").stdout
    assert cli("check", "--json").exit_code in (0, 10, 11)


def test_the_first_command_that_needs_a_secret_moves_every_entry(tmp_path):
    cli = Cli(home=tmp_path / "home")
    install_store(cli.home, cli.keyring.set_text)
    printed = cli("token", "twinfield-ws")
    assert printed.exit_code == 0, printed.stderr
    assert printed.stdout == "pc-basic-0x\n"
    assert_moved_once(cli)
    # One data key entry now; the client secret moves in when it is first used.
    assert sorted(cli.keyring.entries) == sorted(
        [CLIENT_ENTRY, cli("show", "acme-api", "--json").json()["token"]["secret"]["key_entry"]]
    )
    inventory = SqliteInventory(cli.home / "inventory.sqlite3", lambda: cli.keyring)
    try:
        assert inventory.client_secret("acme-books", "tokenctl-basic") == "cs-basic-0x"
    finally:
        inventory.close()
    assert CLIENT_ENTRY not in cli.keyring.entries
    # Numbers are never reused: #2 was deleted under 0.x, #5 is the last one.
    added = cli("add", "new", "--definition", "api-key", "--secret-stdin", input="n")
    assert added.exit_code == 0 and added.stdout == "6\n", added.stderr
    doctor = cli("doctor")
    assert doctor.exit_code == 0, doctor.stdout
    assert "protects 5 secret(s) of 4 token(s) and 1 client secret(s)" in doctor.stdout


def test_entries_written_for_another_home_are_copied_but_left_in_place(tmp_path):
    """A copy of a 0.x inventory shares its entries' names with the original home."""
    cli = Cli(home=tmp_path / "copy")
    original = tmp_path / "original" / "inventory.sqlite3"
    install_store(cli.home, lambda ref, text: None)
    for ref, text in legacy_entries(original.parent).items():
        cli.keyring.set_text(ref, text)
    assert cli("token", "acme-api").stdout == "pc-acme-0x\n"
    for name in PASS_CODES:
        assert cli.stored(name).pass_code == PASS_CODES[name]  # type: ignore[union-attr]
    # The original home still finds its entries where it left them.
    assert {ref for ref in cli.keyring.entries if ref.startswith("token-")} == {
        token_refs()[name] for name in PASS_CODES
    }


class CountingKeyring(MemoryKeyring):
    """A keyring whose ``kill_at``-th call (read, write or delete) is the process's last."""

    def __init__(self, kill_at: int) -> None:
        super().__init__()
        self.calls = 0
        self.kill_at = kill_at

    def _count(self) -> None:
        self.calls += 1
        if self.calls == self.kill_at:
            raise Killed

    def get_text(self, ref: str) -> str | None:
        self._count()
        return super().get_text(ref)

    def set_text(self, ref: str, value: str) -> None:
        self._count()
        super().set_text(ref, value)

    def delete(self, ref: str) -> bool:
        self._count()
        return super().delete(ref)


def test_killed_at_any_keyring_call_and_run_again_nothing_lost_nothing_twice(tmp_path):
    """Every point between the steps: before and after each read, write and delete."""
    probe = CountingKeyring(kill_at=0)
    install_store(tmp_path / "probe", probe.set_text)
    probe.calls = 0
    assert Cli(home=tmp_path / "probe", keyring=probe)("token", "acme-api").exit_code == 0
    total = probe.calls  # the keyring calls of one whole upgrade and the read after it
    assert total >= 3 * len(PASS_CODES)
    for kill_at in range(1, total + 1):
        keyring = CountingKeyring(kill_at=0)
        cli = Cli(home=tmp_path / f"kill-{kill_at}", keyring=keyring)
        install_store(cli.home, keyring.set_text)
        keyring.calls, keyring.kill_at = 0, kill_at
        with pytest.raises(Killed):
            cli("token", "acme-api")
        keyring.kill_at = 0
        again = cli("token", "acme-api")
        assert again.exit_code == 0 and again.stdout == "pc-acme-0x\n", (kill_at, again.stderr)
        assert_moved_once(cli)


def test_killed_inside_the_copy_transaction_and_run_again(tmp_path, monkeypatch):
    from tokenctl.inventory.sealed import SealedSecrets

    cli = Cli(home=tmp_path / "home")
    install_store(cli.home, cli.keyring.set_text)
    real_write = SealedSecrets.write_token
    writes = []

    def killed_on_the_second(self, connection, number, secrets):  # type: ignore[no-untyped-def]
        writes.append(number)
        real_write(self, connection, number, secrets)
        if len(writes) == 2:
            raise Killed  # the row is written in the open transaction, never committed

    with monkeypatch.context() as patch, pytest.raises(Killed):
        patch.setattr(SealedSecrets, "write_token", killed_on_the_second)
        cli("token", "acme-api")
    assert len(sealed_rows(cli.home)) == 1  # the first token's copy was committed
    assert len([ref for ref in cli.keyring.entries if ref.startswith("token-")]) == 2
    assert cli("token", "acme-api").stdout == "pc-acme-0x\n"
    assert_moved_once(cli)


def test_a_0x_store_killed_mid_upgrade_by_sigkill_on_the_real_keyring(tmp_path, real_keyring):
    """Real processes, killed with SIGKILL while they move 200 entries, then run to the end."""
    home = tmp_path / "home"
    env = real_keyring.child_env()
    install_store(home, lambda ref, text: real_keyring.store("tokenctl", ref, text))
    # More tokens of the 0.x layout, so that a kill lands mid-way: rows and entries as
    # 0.x wrote them (the fixture's first token, copied under new numbers and entries).
    connection = sqlite3.connect(home / "inventory.sqlite3", isolation_level=None)
    columns = [row[1] for row in connection.execute("PRAGMA table_info(tokens)")]
    copied = [
        c for c in columns if c not in ("number", "name", "authentication_code", "secret_ref")
    ]
    inventory = str((home / "inventory.sqlite3").resolve())
    extra = {}
    for index in range(200):
        ref = f"token-{index:032x}"
        connection.execute(
            f"INSERT INTO tokens (name, authentication_code, secret_ref, {', '.join(copied)}) "
            f"SELECT ?, ?, ?, {', '.join(copied)} FROM tokens WHERE name = 'acme-api'",
            (f"bulk-{index}", f"BULK-{index:04d}", ref),
        )
        extra[f"bulk-{index}"] = f"pc-bulk-{index}"
        entry = {
            "pass_code": extra[f"bulk-{index}"],
            "definition": "api-key",
            "inventory": inventory,
        }
        real_keyring.store("tokenctl", ref, json.dumps(entry))
    connection.close()

    def legacy_left() -> int:
        # By attributes, reading no secret: an item deleted by a killed process can still
        # be listed for a moment, and secret-tool's `search --all` then fails to read it.
        keyring = OsKeyring()
        try:
            names = keyring.entry_names() or []
        finally:
            keyring.close()
        return sum(name.startswith("token-") for name in names)

    def moved_in() -> int:
        # Secrets sealed into the inventory so far, as another reader sees them.
        reader = sqlite3.connect(home / "inventory.sqlite3", timeout=5)
        try:
            return reader.execute("SELECT count(*) FROM token_secrets").fetchone()[0]
        except sqlite3.OperationalError:  # the table comes with the first move
            return 0
        finally:
            reader.close()

    total = legacy_left()
    seen_partway = []
    # Kill each run as soon as it has moved one more entry in (seen from outside, so the
    # kill lands mid-way whatever the machine's speed), until nothing is left to move.
    for _ in range(6):
        if not legacy_left():
            break
        before = moved_in()
        process = subprocess.Popen(
            [sys.executable, "-m", "tokenctl", "token", "acme-api"],
            env={**env, "TOKENCTL_HOME": str(home)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while process.poll() is None and moved_in() <= before and time.monotonic() < deadline:
            time.sleep(0.002)
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
        process.wait(10)
        left = legacy_left()
        if 0 < left < total:
            seen_partway.append(left)
    finished = tokenctl("token", "acme-api", home=home, env=env)
    assert finished.exit_code == 0 and finished.stdout == "pc-acme-0x\n", finished.stderr
    keyring = OsKeyring()
    inventory = SqliteInventory(home / "inventory.sqlite3", lambda: keyring)
    try:
        for name, pass_code in {**PASS_CODES, **extra}.items():
            stored = inventory.secrets(inventory.resolve(name).number)
            assert stored is not None and stored.pass_code == pass_code, name
    finally:
        inventory.close()
        keyring.close()
    last = tokenctl("token", "bulk-199", home=home, env=env)
    assert last.stdout == "pc-bulk-199\n", last.stderr
    keyring = OsKeyring()
    names = keyring.entry_names() or []
    keyring.close()
    assert [n for n in names if n.startswith("token-")] == []
    assert len([n for n in names if n.startswith("inventory-")]) == 1
    assert len(sealed_rows(home)) == len(PASS_CODES) + len(extra)
    assert seen_partway, "no kill landed while the entries were being moved"


def test_deleting_a_token_still_in_its_0x_entry_removes_that_entry(tmp_path):
    cli = Cli(home=tmp_path / "home")
    install_store(cli.home, cli.keyring.set_text)
    ref = token_refs()["twinfield-ws"]
    deleted = cli("delete", "twinfield-ws", "--yes")
    assert deleted.exit_code == 0, deleted.stderr
    assert "its secret was removed" in deleted.stderr
    assert ref not in cli.keyring.entries
    assert [r for r in cli.keyring.entries if r.startswith("token-")] == []  # all moved in


def test_a_0x_entry_that_is_not_a_tokenctl_secret_fails_that_token_only(tmp_path):
    cli = Cli(home=tmp_path / "home")
    install_store(cli.home, cli.keyring.set_text)
    ref = token_refs()["twinfield-ws"]
    cli.keyring.entries[ref] = "not json"
    refused = cli("token", "twinfield-ws")
    assert (
        refused.exit_code == 4
        and f"the keyring entry tokenctl/{ref} is not a tokenctl secret" in (refused.stderr)
    )
    assert cli("token", "acme-api").stdout == "pc-acme-0x\n"  # the others moved in
    deleted = cli("delete", "twinfield-ws", "--yes")  # and it can still be deleted
    assert deleted.exit_code == 0, deleted.stderr
    assert cli("show", "twinfield-ws").exit_code == 3


def test_a_keyring_without_the_0x_entries_keeps_their_names_for_later(tmp_path):
    """Another keyring answering (a session without the desktop's) must not lose them."""
    cli = Cli(home=tmp_path / "home")
    install_store(cli.home, lambda ref, text: None)  # the entries live elsewhere
    refused = cli("token", "acme-api")
    assert refused.exit_code == 5
    assert (
        f"the OS keyring holds no secret for 'acme-api' (entry tokenctl/{token_refs()['acme-api']}"
        in (refused.stderr)
    )
    shown = cli("show", "acme-api", "--json").json()["token"]["secret"]
    assert shown["keyring_entry"] == token_refs()["acme-api"]  # still known
    for ref, text in legacy_entries(cli.home).items():  # the desktop keyring again
        cli.keyring.set_text(ref, text)
    assert cli("token", "acme-api").stdout == "pc-acme-0x\n"
    assert_moved_once(cli)


def test_a_0x_token_stored_anew_while_its_entry_was_missing_forgets_the_entry(tmp_path):
    cli = Cli(home=tmp_path / "home")
    install_store(cli.home, lambda ref, text: None)  # this keyring lacks the entries
    renewed = cli("renew", "acme-api", "--secret-stdin", input="pc-new")
    assert renewed.exit_code == 0, renewed.stderr
    assert cli("token", "acme-api").stdout == "pc-new\n"
    shown = cli("show", "acme-api", "--json").json()["token"]["secret"]
    assert shown["keyring_entry"] is None  # the inventory holds it now
    assert cli("show", "twinfield-ws", "--json").json()["token"]["secret"]["keyring_entry"]
