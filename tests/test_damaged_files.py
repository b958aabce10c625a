"""Damaged files a user may meet: a bad page in the inventory, a broken hand-edited TOML.

Every command run as a real process ends in a message naming the file and saying what
to do, with exit 1, never "internal error" or a traceback; ``doctor`` reports the damage
as a finding and goes on with its other checks.
"""

from __future__ import annotations

import os
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.proc import Proc
from tests.proc import tokenctl as run
from tokenctl.inventory.sqlite import SqliteInventory
from tokenctl.models import Actor, Token

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
TOKEN_COUNT = 120


def _inventory_with_tokens(home: Path) -> Path:
    """An inventory of many tokens (dozens of pages), checkpointed into the main file."""
    path = home / "inventory.sqlite3"
    inventory = SqliteInventory(path)
    actor = Actor(user="tester", unit="testhost")
    for number in range(1, TOKEN_COUNT + 1):
        inventory.add(
            Token(
                number=0,
                name=f"token-{number}",
                authentication_code=f"code-{number}",
                definition="api-key",
                description="a description long enough to fill pages " * 8,
            ),
            actor,
            NOW,
        )
    inventory.close()  # the last connection checkpoints the WAL into the file
    return path


def _damage_tokens_page(path: Path) -> None:
    """Overwrite the tokens table's root page (never page 1): every look-up passes it."""
    connection = sqlite3.connect(path)
    page_size = connection.execute("PRAGMA page_size").fetchone()[0]
    root = connection.execute("SELECT rootpage FROM sqlite_master WHERE name = 'tokens'")
    page = root.fetchone()[0]
    page_count = connection.execute("PRAGMA page_count").fetchone()[0]
    connection.close()
    assert page > 1 and page_count > 10
    with path.open("r+b") as handle:
        handle.seek((page - 1) * page_size)
        handle.write(b"\xa5" * page_size)


def _assert_damage_reported(result: Proc, path: Path) -> None:
    assert result.exit_code == 1, (result.args, result.stderr)
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr
    assert f"the token inventory {path} is damaged" in result.stderr, result.stderr
    assert ".recover" in result.stderr and "the secrets are sealed in this file" in result.stderr
    assert "data key in the OS keyring" in result.stderr


COMMANDS = (
    ("list",),
    ("list", "--json"),
    ("show", "token-7"),
    ("token", "token-7"),  # the quick path of `token`, then its full path
    ("add", "new-one", "--definition", "api-key", "--secret-stdin"),
)


@pytest.fixture
def env(real_keyring) -> dict[str, str]:
    """The environment of the processes: the session's real Secret Service."""
    return dict(os.environ)


@pytest.fixture
def damaged_home(tmp_path: Path) -> tuple[Path, Path]:
    home = tmp_path / "home"
    path = _inventory_with_tokens(home)
    _damage_tokens_page(path)
    return home, path


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_a_damaged_inventory_page_is_reported_by_every_command(damaged_home, env, args):
    home, path = damaged_home
    result = run(*args, home=home, env=env, input="s3cret\n")
    _assert_damage_reported(result, path)


def test_doctor_reports_a_damaged_inventory_and_goes_on(damaged_home, env):
    home, path = damaged_home
    result = run("doctor", home=home, env=env)
    assert result.exit_code == 1
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr
    lines = {
        line.split()[1]: line for line in result.stdout.splitlines() if line[:4] in ("ok  ", "FAIL")
    }
    assert lines["inventory"].startswith("FAIL"), result.stdout
    assert str(path) in lines["inventory"] and ".recover" in lines["inventory"]
    assert "permissions" in lines and "definitions" in lines  # the other checks ran


@pytest.mark.parametrize("args", [*COMMANDS, ("doctor",)], ids=" ".join)
def test_a_file_that_is_not_sqlite_is_reported(tmp_path, env, args):
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    path = home / "inventory.sqlite3"
    path.write_bytes(b"these are not the tokens you are looking for\n" * 200)
    path.chmod(0o600)
    result = run(*args, home=home, env=env, input="s3cret\n")
    if args == ("doctor",):
        assert result.exit_code == 1 and "Traceback" not in result.stderr
        assert f"the token inventory {path} is damaged" in result.stdout
        assert ".recover" in result.stdout
    else:
        _assert_damage_reported(result, path)


# -- hand-edited TOML files -------------------------------------------------------------

BAD_TOML = {
    "not-utf8": (b'[definitions.x]\ntitle = "caf\xe9"\n', "not UTF-8 text"),
    "binary": (bytes(range(256)) * 4, "not UTF-8 text"),
    "nested-600": (b"x = " + b"[" * 600 + b"]" * 600 + b"\n", "nested too deeply"),
    "nested-tables-600": (b"x = " + b"{a = " * 600 + b"1" + b"}" * 600 + b"\n", "nested too"),
}
TOML_COMMANDS = (
    ("list",),
    ("show", "token-1"),
    ("token", "token-1"),
    ("add", "new-one", "--definition", "api-key", "--secret-stdin"),
    ("doctor",),
)


# `token` hands out a stored value without reading config.toml: no pair for it.
FILE_COMMANDS = [
    (file_name, args)
    for file_name in ("definitions.toml", "config.toml")
    for args in TOML_COMMANDS
    if not (args[0] == "token" and file_name == "config.toml")
]


@pytest.mark.parametrize(
    ("file_name", "args"), FILE_COMMANDS, ids=lambda v: " ".join(v) if isinstance(v, tuple) else v
)
@pytest.mark.parametrize("content", list(BAD_TOML), ids=str)
def test_a_bad_hand_edited_file_is_named_by_every_command(tmp_path, env, file_name, content, args):
    home = tmp_path / "home"
    inventory = SqliteInventory(home / "inventory.sqlite3")
    inventory.add(
        Token(
            number=0,
            name="token-1",
            authentication_code="code-1",
            definition="api-key",
        ),
        Actor(user="tester", unit="testhost"),
        NOW,
    )
    inventory.close()
    data, problem = BAD_TOML[content]
    bad = home / file_name
    bad.write_bytes(data)
    bad.chmod(0o600)
    result = run(*args, home=home, env=env, input="s3cret\n")
    assert result.exit_code == 1, (result.stdout, result.stderr)
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr
    shown = result.stdout if args == ("doctor",) else result.stderr
    assert f"{bad}: " in shown and problem in shown, shown
    if args == ("doctor",):
        check = "config" if file_name == "config.toml" else "definitions"
        assert any(
            line.startswith(f"FAIL {check} ") and str(bad) in line
            for line in result.stdout.splitlines()
        ), result.stdout
        assert "permissions" in result.stdout  # the other checks ran
