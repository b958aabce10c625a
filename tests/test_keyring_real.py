"""Secrets against the real Secret Service (gnome-keyring), read back with secret-tool."""

from __future__ import annotations

import json

import pytest

from tests.proc import tokenctl

SECRET = "pc-7f3a9e1b-never-print-me"


@pytest.fixture
def home(tmp_path):  # type: ignore[no-untyped-def]
    return tmp_path / "home"


@pytest.fixture
def env(real_keyring):  # type: ignore[no-untyped-def]
    environ = real_keyring.child_env()
    environ.pop("TOKENCTL_DEBUG", None)
    return environ


def files_under(path):  # type: ignore[no-untyped-def]
    return [p for p in path.rglob("*") if p.is_file()]


def assert_secret_nowhere(home, *texts):  # type: ignore[no-untyped-def]
    for file in files_under(home):
        assert SECRET.encode() not in file.read_bytes(), file
    for text in texts:
        assert SECRET not in text


def sealed_row(home, number=1):  # type: ignore[no-untyped-def]
    """The inventory's id and the sealed row of token ``number``, read with sqlite3 alone."""
    import sqlite3

    connection = sqlite3.connect(home / "inventory.sqlite3")
    try:
        (inventory_id,) = connection.execute(
            "SELECT value FROM meta WHERE name = 'inventory_id'"
        ).fetchone()
        row = connection.execute(
            "SELECT key_version, pass_code FROM token_secrets WHERE number = ?", (number,)
        ).fetchone()
    finally:
        connection.close()
    return inventory_id, row


def open_independently(data_key_entry, inventory_id, number, field, version, sealed):  # type: ignore[no-untyped-def]
    """Open a sealed value with `cryptography` alone, as docs/keyring.md describes the format."""
    import base64

    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    key = base64.b64decode(json.loads(data_key_entry)["keys"][str(version)])
    context = json.dumps(["tokenctl", 1, inventory_id, "token", number, field, version])
    return AESGCM(key).decrypt(sealed[:12], sealed[12:], context.encode()).decode()


def test_add_seals_the_secret_with_the_one_data_key_in_the_keyring(home, env, real_keyring):
    added = tokenctl(
        "add",
        "acme",
        "--definition",
        "api-key",
        "--description",
        "Acme BV",
        "--expires-in",
        "30d",
        "--secret-stdin",
        home=home,
        env=env,
        input=SECRET + "\n",
    )
    assert added.exit_code == 0, added.stderr
    shown = tokenctl("show", "acme", "--json", home=home, env=env)
    token = shown.json()["token"]
    key_entry = token["secret"]["key_entry"]
    # An independent reader (libsecret's secret-tool) finds the data key, and only it.
    data_key = real_keyring.lookup("tokenctl", key_entry)
    assert data_key is not None and json.loads(data_key)["format"] == 1
    assert [item.attributes["username"] for item in real_keyring.items("tokenctl")] == [key_entry]
    inventory_id, (version, sealed) = sealed_row(home)
    assert key_entry == f"inventory-{inventory_id}" and version == 1
    assert open_independently(data_key, inventory_id, 1, "pass_code", 1, sealed) == SECRET
    listed = tokenctl("list", home=home, env=env)
    table = tokenctl("list", "--json", home=home, env=env)
    doctor = tokenctl("doctor", home=home, env=env)
    assert doctor.exit_code == 0, doctor.stdout + doctor.stderr
    assert "SecretService" in doctor.stdout
    assert f"data key tokenctl/{key_entry} version 1 protects 1 secret(s)" in doctor.stdout
    assert_secret_nowhere(
        home,
        added.stdout,
        added.stderr,
        shown.stdout,
        listed.stdout,
        table.stdout,
        doctor.stdout,
        doctor.stderr,
    )
    assert real_keyring.lookup("tokenctl", "tokenctl-doctor-probe") is None


def test_renew_and_delete_change_the_inventory_never_the_key(home, env, real_keyring):
    tokenctl(
        "add",
        "acme",
        "--definition",
        "api-key",
        "--secret-stdin",
        home=home,
        env=env,
        input="first",
    )
    key_entry = tokenctl("show", "acme", "--json", home=home, env=env).json()["token"]["secret"][
        "key_entry"
    ]
    data_key = real_keyring.lookup("tokenctl", key_entry)
    inventory_id, (_, first) = sealed_row(home)
    renewed = tokenctl("renew", "acme", "--secret-stdin", home=home, env=env, input=SECRET)
    assert renewed.exit_code == 0, renewed.stderr
    _, (version, sealed) = sealed_row(home)
    assert sealed != first and sealed[:12] != first[:12]  # a fresh nonce for every write
    assert open_independently(data_key, inventory_id, 1, "pass_code", version, sealed) == SECRET
    assert real_keyring.lookup("tokenctl", key_entry) == data_key  # never rewritten
    deleted = tokenctl("delete", "acme", "--yes", home=home, env=env)
    assert deleted.exit_code == 0, deleted.stderr
    assert deleted.stdout == "tokenctl add acme --definition api-key --secret-stdin\n"
    assert sealed_row(home)[1] is None
    # The key stays for the inventory's next secret; nothing else is in the keyring.
    assert [item.attributes["username"] for item in real_keyring.items("tokenctl")] == [key_entry]
    assert_secret_nowhere(home, renewed.stdout, renewed.stderr, deleted.stdout, deleted.stderr)


@pytest.mark.parametrize(
    "backend",
    ["keyring.backends.null.Keyring", "keyring.backends.fail.Keyring"],
)
def test_insecure_or_missing_backend_is_refused_with_exit_4(home, env, backend, real_keyring):
    bad = {**env, "PYTHON_KEYRING_BACKEND": backend}
    added = tokenctl(
        "add", "acme", "--definition", "api-key", "--secret-stdin", home=home, env=bad, input=SECRET
    )
    assert added.exit_code == 4
    assert "keyring" in added.stderr and "docs/keyring.md" in added.stderr
    assert "Traceback" not in added.stderr
    assert tokenctl("list", "--json", home=home, env=bad).json()["tokens"] == []
    doctor = tokenctl("doctor", home=home, env=bad)
    assert doctor.exit_code == 4
    assert "FAIL keyring" in doctor.stdout
    assert real_keyring.items("tokenctl") == []
    assert_secret_nowhere(home, added.stdout, added.stderr)


def test_no_dbus_at_all_is_exit_4(home, env):
    broken = {k: v for k, v in env.items() if k not in {"DBUS_SESSION_BUS_ADDRESS"}}
    broken["DBUS_SESSION_BUS_ADDRESS"] = "unix:path=/nonexistent/bus"
    added = tokenctl(
        "add",
        "acme",
        "--definition",
        "api-key",
        "--secret-stdin",
        home=home,
        env=broken,
        input=SECRET,
    )
    assert added.exit_code == 4, added.stderr
    assert "Traceback" not in added.stderr


def test_commands_without_secrets_work_with_a_broken_keyring(home, env):
    tokenctl(
        "add", "acme", "--definition", "api-key", "--secret-stdin", home=home, env=env, input=SECRET
    )
    broken = {**env, "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}
    for args in (
        ["list"],
        ["show", "acme"],
        ["definitions"],
        ["disable", "acme"],
        ["enable", "acme"],
    ):
        result = tokenctl(*args, home=home, env=broken)
        assert result.exit_code == 0, (args, result.stderr)
    refused = tokenctl("token", "acme", home=home, env=broken)
    assert refused.exit_code == 4 and refused.stdout == ""
    assert tokenctl("token", "acme", home=home, env=env).stdout == SECRET + "\n"


def test_files_are_private(home, env, tmp_path):
    tokenctl(
        "add", "acme", "--definition", "api-key", "--secret-stdin", home=home, env=env, input=SECRET
    )
    source = tmp_path / "shop.toml"
    source.write_text('[definitions.shop]\ntitle = "Shop"\nkind = "static"\n')
    assert tokenctl("definitions", "add", "--file", str(source), home=home, env=env).exit_code == 0
    assert (home / "definitions.toml").exists()
    # While a process has the inventory open, SQLite's WAL and shared-memory files exist too.
    from tokenctl.inventory.sqlite import SqliteInventory

    inventory = SqliteInventory(home / "inventory.sqlite3")
    inventory.tokens()
    assert (home / "inventory.sqlite3-wal").exists()
    assert (home.stat().st_mode & 0o777) == 0o700
    for file in files_under(home):
        assert (file.stat().st_mode & 0o777) == 0o600, file
    inventory.close()


def test_token_and_exec_read_the_real_keyring(home, env):
    tokenctl(
        "add", "acme", "--definition", "api-key", "--secret-stdin", home=home, env=env, input=SECRET
    )
    printed = tokenctl("token", "acme", home=home, env=env)
    assert printed.exit_code == 0 and printed.stdout == SECRET + "\n" and printed.stderr == ""
    script = (
        "import os, sys; sys.exit(0 if os.environ['TOKENCTL_ACCESS_TOKEN'] == sys.argv[1] else 9)"
    )
    import sys

    ran = tokenctl("exec", "acme", "--", sys.executable, "-c", script, SECRET, home=home, env=env)
    assert ran.exit_code == 0, ran.stderr


def test_a_refused_keyring_write_is_retried(real_keyring, monkeypatch):
    from tokenctl.secrets.keyring_store import OsKeyring

    store = OsKeyring()
    store.ensure_available()
    store.RETRY_PAUSE = 0.01  # type: ignore[misc]
    real_set = store._backend.set_password
    failures = iter([RuntimeError("Prompt dismissed"), RuntimeError("busy")])

    def flaky(service, username, value):  # type: ignore[no-untyped-def]
        error = next(failures, None)
        if error is not None:
            raise error
        real_set(service, username, value)

    monkeypatch.setattr(store._backend, "set_password", flaky)
    store.set_text("retry-entry", "a data key")
    assert real_keyring.lookup("tokenctl", "retry-entry") == "a data key"


# -- the remembered choice of keyring backend --------------------------------------------

#: Runs `tokenctl token REF`, then prints which keyring backend modules it imported.
BACKEND_PROBE = """
import json, sys
from tokenctl.__main__ import main
sys.argv = ["tokenctl", *sys.argv[1:]]
try:
    main()
except SystemExit as stop:
    code = stop.code
sys.stdout.flush()
loaded = sorted(name for name in sys.modules if name.startswith("keyring.backends."))
sys.stderr.write("\\n" + json.dumps({"exit": code, "loaded": loaded}) + "\\n")
"""


def probe_token(home, env, ref):  # type: ignore[no-untyped-def]
    import subprocess
    import sys

    completed = subprocess.run(
        [sys.executable, "-c", BACKEND_PROBE, "token", ref],
        capture_output=True,
        text=True,
        env={**env, "TOKENCTL_HOME": str(home)},
        timeout=60,
        check=False,
    )
    report = json.loads(completed.stderr.splitlines()[-1])
    return completed.stdout, report["exit"], report["loaded"]


@pytest.fixture
def detecting_env(env):  # type: ignore[no-untyped-def]
    """The peer's environment without the pinned backend: keyring detects it, as for users."""
    environ = dict(env)
    environ.pop("PYTHON_KEYRING_BACKEND", None)
    return environ


@pytest.fixture
def added_detecting(home, detecting_env):  # type: ignore[no-untyped-def]
    """Token 'acme' added with the backend detected (so the choice is now remembered)."""
    added = tokenctl(
        "add", "acme", "--definition", "api-key", "--secret-stdin",
        home=home, env=detecting_env, input=SECRET + "\n",
    )  # fmt: skip
    assert added.exit_code == 0, added.stderr
    return home / "cache" / "keyring-backend.json"


def test_keyring_backend_choice_is_remembered_and_reused(home, detecting_env, added_detecting):
    cache = added_detecting
    assert json.loads(cache.read_text())["backend"] == "keyring.backends.SecretService.Keyring"
    assert oct(cache.stat().st_mode & 0o777) == "0o600"
    stdout, code, loaded = probe_token(home, detecting_env, "acme")
    assert (code, stdout) == (0, SECRET + "\n")
    # Only the remembered backend was imported, not every plugin keyring knows of.
    assert "keyring.backends.SecretService" in loaded
    assert "keyring.backends.macOS" not in loaded and "keyring.backends.kwallet" not in loaded


def test_a_stale_or_broken_backend_choice_is_made_again(home, detecting_env, added_detecting):
    cache = added_detecting
    remembered = json.loads(cache.read_text())
    # A choice that no longer works (KWallet is not running here): keyring chooses again.
    cache.write_text(json.dumps({**remembered, "backend": "keyring.backends.kwallet.DBusKeyring"}))
    assert tokenctl("token", "acme", home=home, env=detecting_env).stdout == SECRET + "\n"
    # A record that names something other than one of keyring's own backends is not
    # followed, not even imported: importing `this` would print the Zen of Python.
    for name in ("tokenctl.paths.Paths", "this.Keyring", "keyring.backends.chainer.ChainerBackend"):
        cache.write_text(json.dumps({**remembered, "backend": name}))
        result = tokenctl("token", "acme", home=home, env=detecting_env)
        assert result.stdout == SECRET + "\n" and result.stderr == ""
        assert json.loads(cache.read_text()) == remembered
    # A choice made in another environment (say, before a plugin was installed) is not reused.
    cache.write_text(
        json.dumps({"backend": "keyring.backends.fail.Keyring", "key": [1, "elsewhere"]})
    )
    assert tokenctl("token", "acme", home=home, env=detecting_env).stdout == SECRET + "\n"
    assert json.loads(cache.read_text()) == remembered


def test_the_users_own_backend_choice_comes_before_the_remembered_one(
    home, detecting_env, added_detecting
):
    assert added_detecting.is_file()
    pinned = {**detecting_env, "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring"}
    refused = tokenctl("token", "acme", home=home, env=pinned)
    assert refused.exit_code == 4 and refused.stdout == ""
    assert "keyring.backends.null.Keyring is not a secure OS keyring" in refused.stderr


# -- one held Secret Service connection --------------------------------------------------


def test_held_connection_writes_what_keyring_writes_and_survives_a_dropped_bus(real_keyring):
    import keyring
    from keyring.backends.SecretService import Keyring as SecretServiceKeyring

    from tokenctl.secrets.held_secret_service import HeldSecretService
    from tokenctl.secrets.keyring_store import OsKeyring

    store = OsKeyring()
    store.set_text("held-entry", "first")
    held = store._backend
    assert isinstance(held, HeldSecretService)
    connection = held._collection.connection
    for round_ in range(5):  # many calls, one connection
        store.set_text("held-entry", f"value-{round_}")
        assert store.get_text("held-entry") == f"value-{round_}"
    assert held._collection.connection is connection
    # The same entry, attributes and label as keyring's own backend writes.
    SecretServiceKeyring().set_password("tokenctl", "plain-entry", "x")
    by_name = {item.attributes["username"]: item for item in real_keyring.items("tokenctl")}
    assert by_name["held-entry"].attributes == {
        **by_name["plain-entry"].attributes,
        "username": "held-entry",
    }
    assert by_name["held-entry"].label == "Password for 'held-entry' on 'tokenctl'"
    assert keyring.get_password("tokenctl", "held-entry") == "value-4"
    # The bus connection goes away (a restarted daemon, a dropped socket): connect again.
    connection.close()
    assert store.get_text("held-entry") == "value-4"
    assert held._collection.connection is not connection
    assert store.delete("held-entry") is True
    assert store.delete("held-entry") is False
    assert real_keyring.lookup("tokenctl", "held-entry") is None
    store.close()
    assert held._collection is None


def test_held_connection_survives_a_restarted_keyring_daemon(real_keyring):
    from tokenctl.secrets.keyring_store import OsKeyring

    store = OsKeyring()
    store.set_text("restart-entry", "kept")
    connection = store._backend._collection.connection
    # The bus connection outlives the daemon; the encrypted session does not.
    real_keyring.restart_keyring()
    assert store.get_text("restart-entry") == "kept"
    assert store._backend._collection.connection is not connection
    store.set_text("restart-entry", "rotated")
    real_keyring.restart_keyring()
    store.set_text("restart-entry", "rotated-again")
    assert real_keyring.lookup("tokenctl", "restart-entry") == "rotated-again"
    store.close()
