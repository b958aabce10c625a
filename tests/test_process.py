"""tokenctl as a process: entry points, lazy imports, error boundary, inventory versions."""

from __future__ import annotations

import ast
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

import tokenctl
from tests.proc import tokenctl as run
from tokenctl.errors import InventoryError
from tokenctl.inventory.sqlite import SCHEMA_VERSION, SqliteInventory

SRC = Path(tokenctl.__file__).parent
HEAVY = ("authlib", "httpx2", "httpx", "keyring", "secretstorage", "jeepney")


def test_console_script_and_module_both_run(tmp_path):
    script = Path(sys.executable).with_name("tokenctl")
    assert script.exists()
    version = subprocess.run(
        [str(script), "--version"], capture_output=True, text=True, check=False
    )
    assert version.returncode == 0 and version.stdout == f"tokenctl {tokenctl.__version__}\n"
    listed = run("list", home=tmp_path / "h", env={"PATH": "/usr/bin:/bin"})
    assert listed.exit_code == 0 and "No tokens yet" in listed.stderr


def test_list_does_not_import_heavy_modules(tmp_path):
    code = (
        "import sys\n"
        "from tokenctl.__main__ import main\n"
        "sys.argv = ['tokenctl', 'list', '--json']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r}), file=sys.stderr)\n"
    )
    for args in (["list", "--json"], ["show", "x"], ["definitions"]):
        code_for = code.replace("'list', '--json'", ", ".join(repr(a) for a in args))
        result = subprocess.run(
            [sys.executable, "-c", code_for],
            capture_output=True,
            text=True,
            env={"TOKENCTL_HOME": str(tmp_path / "h")},
            check=False,
        )
        assert result.stderr.strip().splitlines()[-1] == "[]", (args, result.stderr)


def test_cli_package_imports_no_keyring_http_oauth_or_sqlite():
    banned = {"keyring", "httpx2", "httpx", "authlib", "sqlite3"}
    for path in (SRC / "cli").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in banned, f"{path.name} imports {name}"


def test_usage_error_is_exit_2(tmp_path):
    result = run("list", "--status", "bogus", home=tmp_path / "h", env={})
    assert result.exit_code == 2
    assert "bogus" in result.stderr


def test_internal_error_has_no_traceback_unless_debug(tmp_path):
    home = tmp_path / "h"
    home.mkdir()
    (home / "inventory.sqlite3").write_bytes(b"this is not a database" * 100)
    plain = run("list", home=home, env={})
    assert plain.exit_code == 1
    assert "cannot open the token inventory" in plain.stderr
    assert "Traceback" not in plain.stderr
    debug = run("--debug", "list", home=home, env={})
    assert debug.exit_code == 1
    assert "Traceback" in debug.stderr


def test_inventory_from_a_newer_tokenctl_is_refused(tmp_path):
    path = tmp_path / "inventory.sqlite3"
    SqliteInventory(path).close()
    connection = sqlite3.connect(path)
    connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    connection.close()
    with pytest.raises(InventoryError, match="newer than this tokenctl"):
        SqliteInventory(path)


def test_empty_file_is_migrated_to_the_current_schema(tmp_path):
    path = tmp_path / "inventory.sqlite3"
    path.touch()
    inventory = SqliteInventory(path)
    assert inventory.describe()["schema_version"] == SCHEMA_VERSION
    assert inventory.describe()["journal_mode"] == "wal"
    assert inventory.check_integrity() == []
