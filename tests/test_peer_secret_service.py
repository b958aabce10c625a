"""Tests of the real Secret Service harness (tests/peers/secret_service.py) itself."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import keyring
import keyring.errors
import pytest
from keyring.backends.SecretService import Keyring as SecretServiceKeyring

from tests.peers.secret_service import (
    KEYRING_BACKEND,
    SecretItem,
    SecretService,
    missing_binaries,
    parse_search_output,
    start_secret_service,
)

SERVICE = "tokenctl-harness-test"


def run_python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run *code* in a fresh interpreter (same venv) with exactly *env*."""
    return subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_get_keyring_is_the_secret_service_backend(real_keyring: SecretService) -> None:
    backend = keyring.get_keyring()
    assert type(backend) is SecretServiceKeyring
    assert os.environ["DBUS_SESSION_BUS_ADDRESS"] == real_keyring.bus_address
    assert os.environ["PYTHON_KEYRING_BACKEND"] == KEYRING_BACKEND


def test_in_process_round_trip(real_keyring: SecretService) -> None:
    assert keyring.get_password(SERVICE, "alice") is None
    keyring.set_password(SERVICE, "alice", "s3cret")
    assert keyring.get_password(SERVICE, "alice") == "s3cret"
    keyring.set_password(SERVICE, "alice", "rotated")  # replaces, does not duplicate
    assert keyring.get_password(SERVICE, "alice") == "rotated"
    assert len(real_keyring.items(SERVICE)) == 1
    keyring.delete_password(SERVICE, "alice")
    assert keyring.get_password(SERVICE, "alice") is None
    with pytest.raises(keyring.errors.PasswordDeleteError):
        keyring.delete_password(SERVICE, "alice")


def test_secret_tool_sees_what_keyring_wrote(real_keyring: SecretService) -> None:
    secret = "tök€n\nsecond line\t[/7]"
    keyring.set_password(SERVICE, "alice", secret)
    keyring.set_password(SERVICE, "bob", "other")

    assert real_keyring.lookup(SERVICE, "alice") == secret
    assert real_keyring.lookup(SERVICE, "bob") == "other"
    assert real_keyring.lookup(SERVICE, "carol") is None
    assert real_keyring.lookup("another-service", "alice") is None

    items = real_keyring.items(SERVICE)
    assert [(item.attributes["username"], item.secret) for item in items] == [
        ("alice", secret),
        ("bob", "other"),
    ]
    assert items[0].attributes == {
        "application": "Python keyring library",
        "service": SERVICE,
        "username": "alice",
    }
    assert items[0].label == f"Password for 'alice' on '{SERVICE}'"
    assert [item.secret for item in real_keyring.items(SERVICE, username="bob")] == ["other"]

    keyring.delete_password(SERVICE, "alice")
    assert real_keyring.lookup(SERVICE, "alice") is None
    assert [item.attributes["username"] for item in real_keyring.items(SERVICE)] == ["bob"]


def test_keyring_reads_what_secret_tool_wrote(real_keyring: SecretService) -> None:
    real_keyring.store(SERVICE, "dave", "from-libsecret", label="written by secret-tool")
    assert keyring.get_password(SERVICE, "dave") == "from-libsecret"
    credential = keyring.get_credential(SERVICE, None)
    assert credential is not None
    assert (credential.username, credential.password) == ("dave", "from-libsecret")


def test_subprocess_shares_the_keyring(real_keyring: SecretService) -> None:
    keyring.set_password(SERVICE, "alice", "written-in-process")
    env = real_keyring.child_env()

    read = run_python(
        f"import keyring, sys\nsys.stdout.write(keyring.get_password({SERVICE!r}, 'alice'))",
        env,
    )
    assert read.returncode == 0, read.stderr
    assert read.stdout == "written-in-process"

    write = run_python(
        f"import keyring; keyring.set_password({SERVICE!r}, 'erin', 'written-by-child')",
        env,
    )
    assert write.returncode == 0, write.stderr
    assert keyring.get_password(SERVICE, "erin") == "written-by-child"
    assert real_keyring.lookup(SERVICE, "erin") == "written-by-child"


def test_subprocess_autodetects_secret_service_without_the_pin(
    real_keyring: SecretService, tmp_path: Path
) -> None:
    """What a user without PYTHON_KEYRING_BACKEND gets: still the Secret Service."""
    env = real_keyring.child_env()
    del env["PYTHON_KEYRING_BACKEND"]
    env["XDG_CONFIG_HOME"] = str(tmp_path)  # no keyringrc.cfg
    result = run_python(
        "import keyring; b = keyring.get_keyring(); "
        "print(type(b).__module__ + '.' + type(b).__qualname__)",
        env,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == KEYRING_BACKEND


def test_real_keyring_starts_empty_and_clear_empties(real_keyring: SecretService) -> None:
    assert real_keyring.items(SERVICE) == []
    keyring.set_password(SERVICE, "alice", "x")
    real_keyring.store(SERVICE, "bob", "y")
    assert real_keyring.clear() == 2
    assert real_keyring.items(SERVICE) == []
    assert keyring.get_password(SERVICE, "alice") is None


def test_keyrings_alt_is_not_installed() -> None:
    """keyrings.alt (plaintext/encrypted-file backends) must never be a dependency."""
    assert importlib.util.find_spec("keyrings") is None


def test_second_instance_is_isolated_and_stop_leaves_nothing(
    secret_service: SecretService, tmp_path: Path
) -> None:
    secret_service.store(SERVICE, "shared?", "only-in-session-instance")
    with start_secret_service(tmp_path / "ss") as other:
        pids = other.pids
        assert len(pids) == 2
        assert other.is_running()
        assert other.bus_address != secret_service.bus_address
        assert other.lookup(SERVICE, "shared?") is None
        other.store(SERVICE, "only-other", "v")
        assert secret_service.lookup(SERVICE, "only-other") is None
    assert not other.is_running()
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert secret_service.is_running()
    assert secret_service.lookup(SERVICE, "shared?") == "only-in-session-instance"
    secret_service.clear()


def test_missing_binaries_is_an_explicit_list() -> None:
    assert set(missing_binaries()) <= {"dbus-daemon", "gnome-keyring-daemon", "secret-tool"}


def test_parse_search_output_handles_multiline_secrets() -> None:
    text = (
        "[/2]\nlabel = two\nsecret = a = b\ncreated = 2026-01-01 00:00:00\n"
        "modified = 2026-01-01 00:00:00\nattribute.service = S\nattribute.username = U2\n"
        "[/1]\nlabel = one\nsecret = line1\n[/9]\nline3\ncreated = 2026-01-01 00:00:00\n"
        "modified = 2026-01-01 00:00:00\nattribute.service = S\nattribute.extra = x = y\n"
    )
    assert parse_search_output(text) == [
        SecretItem("/1", "one", "line1\n[/9]\nline3", {"service": "S", "extra": "x = y"}),
        SecretItem("/2", "two", "a = b", {"service": "S", "username": "U2"}),
    ]
    assert parse_search_output("") == []
