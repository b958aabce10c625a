"""Secrets sealed in the inventory under one data key: binding, a lost key, rotation, reset."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fakes import START, Cli, MemoryKeyring, sealed_rows
from tokenctl.errors import SecretUnreadableError
from tokenctl.inventory.sqlite import SqliteInventory
from tokenctl.secrets.sealing import (
    DataKeys,
    UnsealError,
    client_context,
    seal,
    token_context,
    unseal,
)


class Killed(BaseException):
    """Stands for SIGKILL: no handler of tokenctl's runs, nothing is cleaned up."""


def add(cli: Cli, name: str, secret: str) -> None:
    result = cli("add", name, "--definition", "api-key", "--secret-stdin", input=secret)
    assert result.exit_code == 0, result.stderr


def sql(home: Path, statement: str, *args: object) -> list[tuple[object, ...]]:
    connection = sqlite3.connect(home / "inventory.sqlite3", isolation_level=None)
    try:
        return connection.execute(statement, args).fetchall()
    finally:
        connection.close()


def configure_books_client(cli: Cli) -> None:
    """An OAuth definition ``books`` whose client ``app`` has the secret ``client-secret-value``."""
    cli.home.mkdir(parents=True)
    (cli.home / "definitions.toml").write_text(
        '[definitions.books]\ntitle = "Books"\nkind = "oauth2"\n[definitions.books.oauth2]\n'
        'authorization_endpoint = "https://books.example/a"\n'
        'token_endpoint = "https://books.example/t"\n'
    )
    configured = cli(
        "definitions", "configure", "books", "--client-id", "app", "--client-secret-stdin",
        input="client-secret-value",
    )  # fmt: skip
    assert configured.exit_code == 0, configured.stderr


def key_entry(cli: Cli) -> str:
    [name] = [ref for ref in cli.keyring.entries if ref.startswith("inventory-")]
    return name


# -- the format ----------------------------------------------------------------------------

KEY = DataKeys.generate().versions[1]


@settings(max_examples=200, deadline=None)
@given(
    plaintext=st.text(max_size=300),
    number=st.integers(1, 10**6),
    other=st.integers(1, 10**6),
    field=st.sampled_from(["access_token", "refresh_token", "id_token", "pass_code"]),
)
def test_a_sealed_value_opens_only_in_its_own_context(plaintext, number, other, field):
    context = token_context("inv-a", number, field, 1)
    sealed = seal(KEY, plaintext, context)
    assert unseal(KEY, sealed, context) == plaintext
    if len(plaintext.encode()) >= 8:  # shorter ones may turn up in random bytes by chance
        assert plaintext.encode() not in sealed
    for wrong in (
        token_context("inv-b", number, field, 1),  # another inventory
        token_context("inv-a", number, field, 2),  # another key version
        token_context("inv-a", number, "client_secret", 1),  # another field
        client_context("inv-a", "d", "c", 1),
    ):
        with pytest.raises(UnsealError):
            unseal(KEY, sealed, wrong)
    if other != number:
        with pytest.raises(UnsealError):
            unseal(KEY, sealed, token_context("inv-a", other, field, 1))  # another token
    with pytest.raises(UnsealError):
        unseal(DataKeys.generate().versions[1], sealed, context)  # another key
    flipped = bytes([sealed[-1] ^ 1])
    with pytest.raises(UnsealError):
        unseal(KEY, sealed[:-1] + flipped, context)  # one bit altered


def test_every_write_takes_a_fresh_nonce():
    context = token_context("inv", 1, "pass_code", 1)
    nonces = {seal(KEY, "same", context)[:12] for _ in range(1000)}
    assert len(nonces) == 1000


def test_the_data_key_entry_refuses_what_tokenctl_did_not_write():
    malformed = (
        "",
        "{}",
        "[1]",
        '{"format": 1, "keys": {}}',
        '{"format": 2, "keys": {"1": ""}}',
        '{"format": 1, "keys": {"1": "c2hvcnQ="}}',  # 5 bytes, not 32
        '{"format": 1, "keys": {"x": "AA=="}}',
        '{"format": 1, "keys": {"1": "not base64!"}}',
    )
    for text in malformed:
        with pytest.raises(ValueError):
            DataKeys.from_entry(text)
    keys = DataKeys.generate().with_version(2)
    assert DataKeys.from_entry(keys.to_entry()) == keys


# -- binding in the inventory ----------------------------------------------------------------


def test_values_moved_to_another_token_field_or_inventory_do_not_open(cli, tmp_path):
    add(cli, "a", "secret-a")
    add(cli, "b", "secret-b")
    # Token b's sealed value put in place of a's: b's value does not open as a's.
    sql(
        cli.home,
        "UPDATE token_secrets SET pass_code = (SELECT pass_code FROM token_secrets "
        "WHERE number = 2) WHERE number = 1",
    )
    refused = cli("token", "a")
    assert refused.exit_code == 4
    assert "token #1 'a'" in refused.stderr and "cannot be opened" in refused.stderr
    assert "tokenctl renew a --secret-stdin" in refused.stderr
    assert cli("token", "b").stdout == "secret-b\n"  # an error for that token only
    # Into another field of the same token.
    sql(
        cli.home,
        "UPDATE token_secrets SET access_token = pass_code, pass_code = NULL WHERE number = 2",
    )
    own_entry = key_entry(cli)
    other = Cli(home=tmp_path / "other", keyring=cli.keyring)
    add(other, "c", "secret-c")
    with pytest.raises(SecretUnreadableError, match="sealed access token of token #2 'b'"):
        cli.stored("b")
    # Into another inventory, even one whose data key is the very same key.
    entry = cli.keyring.entries[own_entry]
    other_id = sql(other.home, "SELECT value FROM meta WHERE name = 'inventory_id'")[0][0]
    cli.keyring.entries[f"inventory-{other_id}"] = entry
    row = sql(cli.home, "SELECT pass_code FROM token_secrets WHERE number = 1")[0][0]
    sql(other.home, "UPDATE token_secrets SET pass_code = ? WHERE number = 1", row)
    moved = other("token", "c")
    assert moved.exit_code == 4 and "cannot be opened" in moved.stderr


def test_renewing_a_token_whose_secret_does_not_open_stores_a_new_one(cli):
    add(cli, "a", "secret-a")
    sql(cli.home, "UPDATE token_secrets SET pass_code = x'00'")
    shown = cli("key", "status", "--json")
    assert shown.exit_code == 4 and shown.json()["key"]["unreadable"] == ["a"]
    renewed = cli("renew", "a", "--secret-stdin", input="fresh")
    assert renewed.exit_code == 0, renewed.stderr
    assert cli("token", "a").stdout == "fresh\n"
    assert cli("key", "status").exit_code == 0


# -- a lost key ----------------------------------------------------------------------------


def test_a_lost_key_is_said_never_replaced_and_commands_without_secrets_go_on(cli):
    add(cli, "a", "secret-a")
    add(cli, "b", "secret-b")
    lost = key_entry(cli)
    cli.keyring.entries.clear()  # the keyring was reset
    refused = cli("token", "a")
    assert refused.exit_code == 4
    assert f"no data key for this inventory (service tokenctl, entry {lost})" in refused.stderr
    assert "so the secrets sealed with it cannot be read" in refused.stderr
    assert "tokenctl key reset" in refused.stderr and "Traceback" not in refused.stderr
    for args in (["list"], ["show", "a"], ["check"], ["disable", "b"], ["enable", "b"]):
        assert cli(*args).exit_code == 0, args
    # Never a new key while secrets sealed with the old one exist.
    again = cli("add", "c", "--definition", "api-key", "--secret-stdin", input="secret-c")
    assert again.exit_code == 4 and cli.keyring.entries == {}
    doctor = cli("doctor")
    assert doctor.exit_code == 4 and "FAIL data key" in doctor.stdout
    status = cli("key", "status", "--json")
    assert status.exit_code == 4 and status.json()["key"]["keyring_versions"] is None
    # The way out: give those secrets up, then store new ones.
    unasked = cli("key", "reset")
    assert unasked.exit_code == 2 and "--yes" in unasked.stderr
    reset = cli("key", "reset", "--yes", "--json")
    assert reset.exit_code == 0, reset.stderr
    assert reset.json()["key_reset"]["discarded"] == ["a", "b"]
    needs = cli("token", "a")
    assert needs.exit_code == 5 and "has no secret stored" in needs.stderr
    history = cli("show", "a", "--json").json()["token"]["history"]
    assert history[0]["event"] == "secret discarded"
    add(cli, "c", "secret-c")
    assert cli("token", "c").stdout == "secret-c\n"
    assert cli("key", "status", "--json").json()["key"]["key_version"] == 2
    refused_reset = cli("key", "reset", "--yes")
    assert refused_reset.exit_code == 1 and "nothing to reset" in refused_reset.stderr


def test_an_entry_that_is_not_a_data_key_is_never_overwritten(cli):
    cli.keyring.entries["x"] = "x"
    add(cli, "a", "secret-a")
    entry = key_entry(cli)
    cli.keyring.entries[entry] = "not a key"
    refused = cli("add", "b", "--definition", "api-key", "--secret-stdin", input="b")
    assert refused.exit_code == 4 and "is not a tokenctl data key" in refused.stderr
    assert cli.keyring.entries[entry] == "not a key"
    assert cli("token", "a").exit_code == 4
    # Given up on purpose: `key reset` removes it, and the next secret makes a new key.
    assert cli("key", "reset", "--yes").exit_code == 0
    add(cli, "b", "secret-b")
    assert cli("token", "b").stdout == "secret-b\n"
    assert json.loads(cli.keyring.entries[entry])["keys"].keys() == {"2"}
    assert cli.keyring.entries["x"] == "x"  # another application's entry: untouched


def test_the_first_key_is_made_inside_the_transaction_and_adopted_after_a_kill(cli, monkeypatch):
    """Killed after writing the key to the keyring, before its commit: the next run
    adopts that key instead of making another."""
    from tokenctl.inventory.sealed import SealedSecrets

    real = SealedSecrets._make_key

    def killed_after_the_keyring_write(self, connection, version):  # type: ignore[no-untyped-def]
        real(self, connection, version)
        raise Killed

    with monkeypatch.context() as patch, pytest.raises(Killed):
        patch.setattr(SealedSecrets, "_make_key", killed_after_the_keyring_write)
        cli("add", "a", "--definition", "api-key", "--secret-stdin", input="secret-a")
    written = dict(cli.keyring.entries)
    assert len(written) == 1 and sealed_rows(cli.home) == []
    add(cli, "a", "secret-a")
    assert cli.keyring.entries == written  # adopted, not replaced
    assert cli("token", "a").stdout == "secret-a\n"


# -- rotation --------------------------------------------------------------------------------


def fill(cli: Cli, count: int) -> dict[str, str]:
    values = {f"t{index}": f"secret-{index}" for index in range(count)}
    for name, value in values.items():
        add(cli, name, value)
    return values


def assert_all_open(cli: Cli, values: dict[str, str]) -> None:
    for name, value in values.items():
        assert cli("token", name).stdout == f"{value}\n", name


def test_rotate_reseals_everything_under_a_new_version(cli):
    values = fill(cli, 5)
    before = {row[0]: row[3:] for row in sealed_rows(cli.home)}
    old_entry = cli.keyring.entries[key_entry(cli)]
    rotated = cli("key", "rotate", "--json")
    assert rotated.exit_code == 0, rotated.stderr
    assert rotated.json()["rotation"] == {
        "key_version": 2,
        "resealed": 5,
        "resumed": False,
        "dropped_versions": [1],
    }
    assert_all_open(cli, values)
    rows = sealed_rows(cli.home)
    assert {row[1] for row in rows} == {2}
    assert all(before[row[0]] != row[3:] for row in rows)
    entry = json.loads(cli.keyring.entries[key_entry(cli)])
    assert list(entry["keys"]) == ["2"]
    assert json.loads(old_entry)["keys"]["1"] not in cli.keyring.entries[key_entry(cli)]
    status = cli("key", "status", "--json").json()["key"]
    assert (status["key_version"], status["by_version"]) == (2, {"2": 5})
    assert "Every secret is now sealed with data key version 3" in cli("key", "rotate").stderr


def test_a_rotation_interrupted_anywhere_leaves_every_secret_readable(cli, monkeypatch):
    from tokenctl.inventory.sealed import SealedSecrets

    values = fill(cli, 7)
    monkeypatch.setattr(SqliteInventory, "ROTATION_BATCH", 2)
    real = SealedSecrets.reseal_tokens
    batches = []

    def killed_in_the_third_batch(self, connection, version, after, limit):  # type: ignore[no-untyped-def]
        batches.append(after)
        result = real(self, connection, version, after, limit)
        if len(batches) == 3:
            raise Killed  # this batch's transaction never commits
        return result

    with monkeypatch.context() as patch, pytest.raises(Killed):
        patch.setattr(SealedSecrets, "reseal_tokens", killed_in_the_third_batch)
        cli("key", "rotate")
    # Two batches of two committed; the third one's transaction never did.
    assert [row[1] for row in sealed_rows(cli.home)] == [2, 2, 2, 2, 1, 1, 1]
    assert set(json.loads(cli.keyring.entries[key_entry(cli)])["keys"]) == {"1", "2"}
    assert_all_open(cli, values)
    # Writes meanwhile seal with the new version already.
    add(cli, "late", "secret-late")
    assert sql(cli.home, "SELECT key_version FROM token_secrets WHERE number = 8") == [(2,)]
    status = cli("key", "status")
    assert "a rotation is unfinished" in status.stdout
    resumed = cli("key", "rotate", "--json")
    assert resumed.exit_code == 0, resumed.stderr
    assert resumed.json()["rotation"]["resumed"] is True
    assert resumed.json()["rotation"]["key_version"] == 2
    assert {row[1] for row in sealed_rows(cli.home)} == {2}
    assert list(json.loads(cli.keyring.entries[key_entry(cli)])["keys"]) == ["2"]
    assert_all_open(cli, {**values, "late": "secret-late"})


def test_a_rotation_killed_before_dropping_the_old_key_finishes_on_the_next_run(cli, monkeypatch):
    values = fill(cli, 3)
    writes = []
    real = MemoryKeyring.set_text

    def killed_at_the_last_keyring_write(self, ref, value):  # type: ignore[no-untyped-def]
        writes.append(ref)
        if len(writes) == 2:
            raise Killed  # every value is re-sealed; the entry still lists both versions
        real(self, ref, value)

    with monkeypatch.context() as patch, pytest.raises(Killed):
        patch.setattr(MemoryKeyring, "set_text", killed_at_the_last_keyring_write)
        cli("key", "rotate")
    assert {row[1] for row in sealed_rows(cli.home)} == {2}
    assert_all_open(cli, values)
    finished = cli("key", "rotate", "--json")
    assert finished.json()["rotation"]["resumed"] is True
    assert list(json.loads(cli.keyring.entries[key_entry(cli)])["keys"]) == ["2"]
    assert_all_open(cli, values)


def test_a_value_that_does_not_open_stops_the_rotation_and_keeps_the_old_version(cli):
    values = fill(cli, 3)
    sql(cli.home, "UPDATE token_secrets SET pass_code = x'00' WHERE number = 2")
    stopped = cli("key", "rotate")
    assert stopped.exit_code == 1
    assert "the secrets of t1 do not open" in stopped.stderr
    assert set(json.loads(cli.keyring.entries[key_entry(cli)])["keys"]) == {"1", "2"}
    del values["t1"]
    assert_all_open(cli, values)


def test_client_secrets_are_sealed_and_rotated_too(cli):
    configure_books_client(cli)
    assert b"client-secret-value" not in (cli.home / "inventory.sqlite3").read_bytes()
    assert cli("key", "rotate").exit_code == 0
    inventory = SqliteInventory(cli.home / "inventory.sqlite3", lambda: cli.keyring)
    try:
        assert inventory.client_secret("books", "app") == "client-secret-value"
        assert inventory.client_secret("books", "other-app") is None
    finally:
        inventory.close()
    assert sql(cli.home, "SELECT key_version FROM client_secrets") == [(2,)]


def test_rotate_and_status_without_any_secret(cli):
    rotated = cli("key", "rotate")
    assert rotated.exit_code == 0 and "Nothing to rotate" in rotated.stderr
    status = cli("key", "status", "--json").json()["key"]
    assert status["key_version"] is None and status["secrets"] == 0
    assert cli.keyring.entries == {}


def test_key_commands_need_the_keyring(cli):
    add(cli, "a", "secret-a")
    cli.keyring.available = False
    for args in (["key", "status"], ["key", "rotate"], ["key", "reset", "--yes"]):
        result = cli(*args)
        assert result.exit_code == 4, args
        assert "Traceback" not in result.stderr


# -- against the real keyring ------------------------------------------------------------------


def test_rotation_on_the_real_keyring(tmp_path, real_keyring):
    from tests.proc import tokenctl

    home = tmp_path / "home"
    env = real_keyring.child_env()
    for index in range(3):
        added = tokenctl(
            "add", f"t{index}", "--definition", "api-key", "--secret-stdin",
            home=home, env=env, input=f"secret-{index}",
        )  # fmt: skip
        assert added.exit_code == 0, added.stderr
    [item] = real_keyring.items("tokenctl")
    before = json.loads(item.secret)
    rotated = tokenctl("key", "rotate", "--json", home=home, env=env)
    assert rotated.exit_code == 0, rotated.stderr
    [after_item] = real_keyring.items("tokenctl")
    after = json.loads(after_item.secret)
    assert after_item.attributes["username"] == item.attributes["username"]
    assert list(after["keys"]) == ["2"] and after["keys"]["2"] != before["keys"]["1"]
    for index in range(3):
        printed = tokenctl("token", f"t{index}", home=home, env=env)
        assert printed.stdout == f"secret-{index}\n", printed.stderr
    doctor = tokenctl("doctor", home=home, env=env)
    assert doctor.exit_code == 0, doctor.stdout
    assert "version 2 protects 3 secret(s) of 3 token(s)" in doctor.stdout


def test_a_writer_with_keys_read_before_the_rotation_seals_with_the_new_version(cli, monkeypatch):
    """Another process read the data key before the rotation began, and writes during it."""
    from tokenctl.models import Actor, TokenSecrets

    fill(cli, 4)
    monkeypatch.setattr(SqliteInventory, "ROTATION_BATCH", 1)
    other = SqliteInventory(cli.home / "inventory.sqlite3", lambda: cli.keyring)
    assert other.secrets(1) is not None  # its keys are read now: version 1 only
    rotating = SqliteInventory(cli.home / "inventory.sqlite3", lambda: cli.keyring)

    def write_meanwhile(moved: int) -> None:  # after a batch has committed
        if moved == 2:
            token = other.get(1)
            assert token.updated_at is not None
            other.update(
                1,
                {},
                Actor("other", "test"),
                token.updated_at,
                event="renewed",
                secrets=TokenSecrets(pass_code="written-meanwhile"),
            )

    result = rotating.rotate_key(progress=write_meanwhile)
    rotating.close()
    other.close()
    assert (result.version, result.moved, result.stuck) == (2, 4, ())
    assert cli("token", "t0").stdout == "written-meanwhile\n"
    assert {row[1] for row in sealed_rows(cli.home)} == {2}


def test_key_rotate_killed_by_sigkill_and_run_again_on_the_real_keyring(tmp_path, real_keyring):
    import os
    import signal
    import subprocess
    import sys
    import time
    from datetime import UTC, datetime

    from tests.proc import tokenctl
    from tokenctl.models import Actor, Token, TokenSecrets
    from tokenctl.secrets.keyring_store import OsKeyring

    home = tmp_path / "home"
    env = real_keyring.child_env()
    keyring = OsKeyring()
    inventory = SqliteInventory(home / "inventory.sqlite3", lambda: keyring)
    values = {f"t{index}": f"secret-{index}" for index in range(3000)}
    now = datetime.now(UTC)
    for name, value in values.items():
        inventory.add(
            Token(number=0, name=name, authentication_code=f"C-{name}", definition="api-key",
                  secret_set_at=now),
            Actor("test", "test"), now, secrets=TokenSecrets(pass_code=value),
        )  # fmt: skip
    inventory.close()
    import sqlite3

    def resealed() -> tuple[int, int]:
        """(key versions in use, secrets already moved to the newest), as a reader sees them."""
        connection = sqlite3.connect(home / "inventory.sqlite3", timeout=5)
        try:
            row = connection.execute(
                "SELECT count(DISTINCT key_version), "
                "count(*) FILTER (WHERE key_version = "
                "(SELECT max(key_version) FROM token_secrets)) FROM token_secrets"
            ).fetchone()
            versions, newest = row
            return versions, newest if versions > 1 else 0
        finally:
            connection.close()

    # Kill each run as soon as one more of its batches has committed (seen from outside,
    # so the kill lands mid-rotation whatever the machine's speed), then start it again.
    partway = []
    for _ in range(4):
        _, before = resealed()
        process = subprocess.Popen(
            [sys.executable, "-m", "tokenctl", "key", "rotate"],
            env={**env, "TOKENCTL_HOME": str(home)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while process.poll() is None and time.monotonic() < deadline:
            versions, newest = resealed()
            if versions > 1 and newest > before:
                break
            time.sleep(0.002)
        if process.poll() is not None:
            break
        os.kill(process.pid, signal.SIGKILL)
        process.wait(10)
        versions, newest = resealed()
        if versions > 1:
            partway.append(newest)
            # Mid-rotation: every secret still opens.
            inventory = SqliteInventory(home / "inventory.sqlite3", lambda: keyring)
            try:
                for number in (1, 1500, 3000):
                    assert inventory.secrets(number) is not None
            finally:
                inventory.close()
    finished = tokenctl("key", "rotate", "--json", home=home, env=env)
    assert finished.exit_code == 0, finished.stderr
    rows = sealed_rows(home)
    assert len({row[1] for row in rows}) == 1 and len(rows) == 3000
    [item] = real_keyring.items("tokenctl")
    assert len(json.loads(item.secret)["keys"]) == 1
    inventory = SqliteInventory(home / "inventory.sqlite3", lambda: keyring)
    try:
        for name, value in values.items():
            stored = inventory.secrets(inventory.resolve(name).number)
            assert stored is not None and stored.pass_code == value
    finally:
        inventory.close()
        keyring.close()
    assert partway and partway == sorted(set(partway)), partway  # killed mid-way, each run further


def test_key_reset_with_the_key_there_gives_up_only_what_does_not_open(cli):
    add(cli, "a", "secret-a")
    add(cli, "b", "secret-b")
    sql(cli.home, "UPDATE token_secrets SET pass_code = x'00' WHERE number = 1")
    asked = cli("key", "reset", tty=True, input="y\n")
    assert asked.exit_code == 0, asked.stderr
    assert "Discard the secrets of a, which do not open?" in asked.stderr
    assert cli("token", "b").stdout == "secret-b\n"
    assert cli("token", "a").exit_code == 5  # no secret stored: renew it
    history = cli("show", "a", "--json").json()["token"]["history"]
    assert history[0]["event"] == "secret discarded"
    assert "did not open" in history[0]["detail"]


def test_a_copy_whose_shared_key_was_rotated_elsewhere_goes_on_token_by_token(cli, tmp_path):
    """Copies of one inventory share its key entry; a rotation in one is felt in the other."""
    import shutil

    add(cli, "a", "secret-a")
    add(cli, "b", "secret-b")
    copy = Cli(home=tmp_path / "copy", keyring=cli.keyring)
    copy.home.mkdir(mode=0o700)
    shutil.copy(cli.home / "inventory.sqlite3", copy.home / "inventory.sqlite3")
    assert copy("token", "a").stdout == "secret-a\n"
    assert cli("key", "rotate").exit_code == 0
    refused = copy("token", "a")
    assert (
        refused.exit_code == 4
        and "the key was rotated in a copy of this inventory" in refused.stderr
    )
    # Renewing stores it anew under the newest version; the other token is unaffected.
    assert copy("renew", "a", "--secret-stdin", input="renewed-a").exit_code == 0
    assert copy("token", "a").stdout == "renewed-a\n"
    assert copy("token", "b").exit_code == 4
    assert cli("token", "b").stdout == "secret-b\n"


def test_removing_a_definition_removes_its_client_secret(cli):
    configure_books_client(cli)
    assert sql(cli.home, "SELECT definition, client_id FROM client_secrets") == [("books", "app")]
    assert cli("definitions", "remove", "books").exit_code == 0
    assert sql(cli.home, "SELECT definition, client_id FROM client_secrets") == []


def test_a_data_key_of_a_newer_tokenctl_is_named_and_never_given_up(cli):
    add(cli, "a", "secret-a")
    entry = key_entry(cli)
    newer = json.dumps({"format": 2, "keys": {"1": "whatever a newer tokenctl keeps"}})
    cli.keyring.entries[entry] = newer
    refused = cli("token", "a")
    assert refused.exit_code == 4 and "written by a newer tokenctl" in refused.stderr
    assert "upgrade tokenctl" in refused.stderr
    assert cli("key", "reset", "--yes").exit_code == 4
    assert cli.keyring.entries[entry] == newer and len(sealed_rows(cli.home)) == 1


def test_key_reset_keeps_a_secret_renewed_after_it_was_found_unreadable(cli, monkeypatch):
    add(cli, "a", "secret-a")
    sql(cli.home, "UPDATE token_secrets SET pass_code = x'00' WHERE number = 1")
    inventory = SqliteInventory(cli.home / "inventory.sqlite3", lambda: cli.keyring)
    stale = inventory._unreadable_rows()
    assert stale == ([(1, "a")], [])
    assert cli("renew", "a", "--secret-stdin", input="renewed").exit_code == 0
    # The reset looked before the renewal committed; it must not discard the new secret.
    monkeypatch.setattr(SqliteInventory, "_unreadable_rows", lambda self: stale)
    from tokenctl.models import Actor

    assert inventory.reset_key(Actor("t", "t"), START) == []
    inventory.close()
    assert cli("token", "a").stdout == "renewed\n"
