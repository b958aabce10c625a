"""tokenctl as a process: entry points, lazy imports, error boundary, inventory versions."""

from __future__ import annotations

import ast
import importlib.util
import io
import os
import sqlite3
import subprocess
import sys
import tomllib
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import typer.main
from hypothesis import given
from hypothesis import strategies as st
from typer import _click
from typer._coercion import build_runtime_param

import tokenctl
from tests.fakes import HEAVY
from tests.proc import tokenctl as run
from tokenctl import iostreams
from tokenctl.cli.app import COMMANDS, GROUPS, build_app
from tokenctl.cli.coercion import _FastCoercion
from tokenctl.definitions import registry
from tokenctl.errors import InventoryError, NotFoundError, report_failure
from tokenctl.inventory.sqlite import SCHEMA_VERSION, SqliteInventory
from tokenctl.iostreams import STDOUT_CLOSED
from tokenctl.models import TEAM_STORE_ONLY, Actor, Token
from tokenctl.render import plain_row

SRC = Path(tokenctl.__file__).parent


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
    for args in (
        ["list", "--json"],
        ["list"],
        ["--home", str(tmp_path / "h"), "list", "--status", "valid", "--state", "effective"],
        ["show", "x"],
        ["definitions"],
        ["definitions", "show", "api-key"],
    ):
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
    assert f"the token inventory {home / 'inventory.sqlite3'} is damaged" in plain.stderr
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


def test_an_inventory_that_cannot_be_opened_is_an_inventory_error(tmp_path):
    home = tmp_path / "home"
    (home / "inventory.sqlite3").mkdir(parents=True)  # not a file: opening it fails (OSError)
    result = run("list", home=home, env={})
    assert result.exit_code == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"error: cannot open the token inventory {home}")


def test_empty_file_is_migrated_to_the_current_schema(tmp_path):
    path = tmp_path / "inventory.sqlite3"
    path.touch()
    inventory = SqliteInventory(path)
    assert inventory.describe()["schema_version"] == SCHEMA_VERSION
    assert inventory.describe()["journal_mode"] == "wal"
    assert inventory.check_integrity() == []


def test_inventory_columns_are_the_token_fields_and_get_reads_by_number(tmp_path):
    inventory = SqliteInventory(tmp_path / "inventory.sqlite3")
    table = [row[1] for row in inventory._connection.execute("PRAGMA table_info(tokens)")]
    # The team store's identities are not kept in the local store.
    assert table == [item.name for item in fields(Token) if item.name not in TEAM_STORE_ONLY]
    now = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    actor = Actor(user="test", unit="test")
    # A digits-only authentication code equal to another token's number: `get` is by number.
    first = inventory.add(Token(0, "first", "2", "api-key", "ref-1"), actor, now)
    second = inventory.add(Token(0, "second", "CODE-2", "api-key", "ref-2"), actor, now)
    assert second.number == 2
    assert inventory.get(2) == second and inventory.resolve("2") == second
    inventory.delete(2, actor, now, detail=None)
    assert inventory.resolve("2") == first  # a reference falls back to the code
    with pytest.raises(NotFoundError, match="no longer exists"):
        inventory.get(2)
    assert inventory.update(first.number, {"description": "d"}, actor, now, event="e").description
    with pytest.raises(ValueError, match="cannot be changed"):
        inventory.update(first.number, {"number": 9}, actor, now, event="e")  # type: ignore[typeddict-unknown-key]
    inventory.close()


@pytest.mark.parametrize("debug", [False, True])
def test_one_map_from_errors_to_exit_codes(monkeypatch, debug):
    discarded = []
    monkeypatch.setattr(iostreams, "discard_stdout", lambda: discarded.append(True))

    def reported(error):
        stream = io.StringIO()
        try:
            raise error
        except BaseException as raised:
            code = report_failure(raised, stream, debug=debug)
        return code, stream.getvalue()

    code, text = reported(NotFoundError("no token 'x'", hint="give a number"))
    assert (code, text.endswith("error: no token 'x'\nhint: give a number\n")) == (3, True)
    assert ("Traceback" in text) is debug
    assert reported(KeyboardInterrupt()) == (130, "\ninterrupted\n")
    code, text = reported(BrokenPipeError())
    assert (code, discarded, "error" in text) == (STDOUT_CLOSED, [True], debug)
    code, text = reported(ValueError("secret input"))
    assert code == 1 and text.endswith(
        "error: internal error (ValueError)\n"
        "hint: run again with --debug to see the traceback, and report it\n"
    )
    assert ("secret input" in text) is debug  # only a traceback shows the exception's text


def test_list_builds_only_its_own_subcommand(tmp_path):
    code = (
        "import sys\n"
        "from tokenctl.__main__ import main\n"
        "sys.argv = ['tokenctl', 'list']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.startswith('tokenctl.cli.')), file=sys.stderr)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"TOKENCTL_HOME": str(tmp_path / "h")},
        check=False,
    )
    loaded = result.stderr.strip().splitlines()[-1]
    # cli.completion: the completion callbacks the parameters name (they import on use).
    assert loaded == (
        "['tokenctl.cli.app', 'tokenctl.cli.coercion', 'tokenctl.cli.common', "
        "'tokenctl.cli.completion', "
        "'tokenctl.cli.list_cmd']"
    )


def test_help_lists_every_subcommand_in_order(tmp_path):
    result = run("--help", home=tmp_path / "h", env={})
    assert result.exit_code == 0
    lines = result.stdout.split("Commands:\n", 1)[1].splitlines()
    assert [line.split()[0] for line in lines if line.strip()] == [*COMMANDS, *GROUPS]


# -- Typer's coercion without pydantic (see cli/coercion.py) ----------------------------


def _command_params():
    """(command path, context, parameter) for every parameter of the CLI, -h/--help too."""
    found = []

    def walk(command, path, parent):
        ctx = _click.Context(command, parent=parent, **command.context_settings)
        help_option = command.get_help_option(ctx)
        for param in [*command.params, *([help_option] if help_option else [])]:
            found.append((path, ctx, param))
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, (*path, name), ctx)

    walk(typer.main.get_command(build_app()), (), None)
    return found


def _coerced(runtime, value, param, ctx):
    try:
        result = runtime.coerce(value, param=param, ctx=ctx)
    except Exception as error:
        message = error.format_message() if isinstance(error, _click.ClickException) else ""
        return ("raised", type(error), message)
    return ("returned", type(result), result)


def test_fast_coercion_covers_the_overview_parameters():
    fast = {
        (path, param.name)
        for path, _ctx, param in _command_params()
        if isinstance(param._runtime_param, _FastCoercion)
    }
    for name in ("home", "debug", "version", "help"):
        assert ((), name) in fast
    for name in ("status", "definition", "state", "as_json", "help"):
        assert (("list",), name) in fast
    assert (("definitions", "show"), "name") in fast


def test_fast_coercion_agrees_with_typer(tmp_path):
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    strings = [
        "",
        " ",
        "valid",
        "VALID",
        "Valid",
        "bogus",
        "effective",
        "not_effective",
        "not-effective",
        "api-key",
        "-",
        "a\x00b",
        "\udcff",
        "é",
        "x" * 300,
        str(tmp_path),
        str(a_file),
        str(tmp_path / "missing"),
        "~/x",
        "../x",
        "8",
        "08",
        "0",
        "64",
        "65",
        "1.5",
        "300.0",
        "1.",
        ".5",
        "+8",
        "-8",
        " 8",
        "8 ",
        "1_000",
        "1e3",
        "٣",
        "99999999999999999999",
    ]
    values = [None, True, False, 0, 1.5, 8, 64, 65, 300.0, 1024, 70000, -1.0, b"valid", *strings]
    checked = 0
    for _path, ctx, param in _command_params():
        runtime = param._runtime_param
        if not isinstance(runtime, _FastCoercion):
            continue
        multi = param.multiple or param.nargs == -1
        cases = values + ([(), ("valid", "expired"), ["bogus"], tuple(strings)] if multi else [])
        for value in cases:
            typer_own = build_runtime_param(param.type_descriptor)
            expected = _coerced(typer_own, value, param, ctx)
            assert _coerced(runtime, value, param, ctx) == expected, (param.name, value)
            checked += 1
    assert checked > 300


# -- stdout closed by its reader (`tokenctl list | head -1`) -----------------------------


def _fill(home: Path, count: int) -> None:
    inventory = SqliteInventory(home / "inventory.sqlite3")
    inventory._connection.execute("PRAGMA synchronous = OFF")  # throw-away data
    now = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    try:
        for index in range(count):
            token = Token(
                number=0,
                name=f"t{index:05d}",
                authentication_code=f"CODE-{index:05d}",
                definition="api-key",
                description=f"token number {index} for the pipe test " * 2,
                expires_at=now + timedelta(days=index),
            )
            inventory.add(token, Actor(user="test", unit="test"), now)
    finally:
        inventory.close()


@pytest.fixture(scope="module")
def big_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("big") / "home"
    home.mkdir()
    _fill(home, 1500)  # ~200 kB of output, more than a pipe holds
    return home


#: stdout buffered (the default) and unbuffered (PYTHONUNBUFFERED=1, as in many CI jobs).
BUFFERING = [{}, {"PYTHONUNBUFFERED": "1"}]


@pytest.mark.parametrize("buffering", BUFFERING, ids=["buffered", "unbuffered"])
@pytest.mark.parametrize("args", [["list"], ["list", "--json"]])
def test_reader_closing_stdout_early_is_quiet(big_home, args, buffering):
    """`tokenctl list | head -c 100`: no "internal error", no traceback, exit 141."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tokenctl", *args],
        bufsize=0,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={"TOKENCTL_HOME": str(big_home), "PATH": "/usr/bin:/bin", **buffering},
    )
    assert process.stdout is not None and process.stderr is not None
    assert process.stdout.read(100)  # like head -c 100: a little, then close
    process.stdout.close()
    stderr = process.stderr.read().decode()
    process.stderr.close()
    assert process.wait(timeout=60) == STDOUT_CLOSED == 141
    assert stderr == ""


@pytest.mark.parametrize("buffering", BUFFERING, ids=["buffered", "unbuffered"])
@pytest.mark.parametrize("count", [1, 300])
@pytest.mark.parametrize("args", [["list"], ["list", "--json"], ["definitions"]])
def test_stdout_closed_before_any_output_is_quiet(tmp_path, count, args, buffering):
    """The reader is gone before tokenctl writes: the error comes in a write or at exit."""
    home = tmp_path / "h"
    home.mkdir()
    _fill(home, count)
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "tokenctl", *args],
            stdout=write_end,
            stderr=subprocess.PIPE,
            env={"TOKENCTL_HOME": str(home), "PATH": "/usr/bin:/bin", **buffering},
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)
    assert result.returncode == 141
    assert result.stderr.decode() == ""


# -- the parsed built-in definitions are cached like byte code --------------------------


@pytest.fixture
def builtin_cache(tmp_path, monkeypatch):
    cache = tmp_path / "pycache" / "builtin.toml.test.marshal"
    monkeypatch.setattr(registry, "_builtin_cache_file", lambda: cache)
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    return cache


def test_builtin_definitions_are_cached_and_read_back(builtin_cache):
    data = registry.BUILTIN_FILE.read_bytes()
    parsed = tomllib.loads(data.decode())
    assert registry._parse_builtin(data) == parsed
    assert builtin_cache.is_file()
    assert registry._parse_builtin(data) == parsed
    assert registry.load_builtin_definitions() == registry._parse_document(parsed, "built-in")


def test_builtin_cache_of_other_contents_or_damaged_is_not_used(builtin_cache):
    data = registry.BUILTIN_FILE.read_bytes()
    registry._parse_builtin(data)
    other = data + b'\n[definitions.cache-test]\ntitle = "Cache test"\n'
    assert "cache-test" in registry._parse_builtin(other)["definitions"]
    assert registry._parse_builtin(data) == tomllib.loads(data.decode())
    builtin_cache.write_bytes(b"\x00garbage")
    assert registry._parse_builtin(data) == tomllib.loads(data.decode())


def test_builtin_cache_is_not_written_without_byte_code(builtin_cache, monkeypatch):
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    data = registry.BUILTIN_FILE.read_bytes()
    assert registry._parse_builtin(data) == tomllib.loads(data.decode())
    assert not builtin_cache.exists()


def test_builtin_cache_sits_beside_the_byte_code():
    cache = registry._builtin_cache_file()
    assert cache is not None
    pyc = importlib.util.cache_from_source(registry.__file__)
    assert cache.parent == Path(pyc).parent
    assert cache.name.startswith("builtin.toml.")


# -- lines for pipes ----------------------------------------------------------------------


def _escaped(character):
    code = ord(character)
    if code < 0x20 or 0x7F <= code <= 0x9F:  # C0 (TAB, line feed too), DEL, C1
        return {"\t": "\\t", "\n": "\\n", "\r": "\\r"}.get(character, f"\\x{code:02x}")
    return character


def _plain_row_reference(values):
    cleaned = ["".join(map(_escaped, value or "")) for value in values]
    return "\t".join(cleaned) + "\n"


@given(
    st.lists(
        st.one_of(
            st.none(), st.text(alphabet=st.sampled_from("ab \\\t\n\r\xe9\x1b\x7f\x9b\x85\x00"))
        )
    )
)
def test_plain_row_matches_its_definition(values):
    assert plain_row(values) == _plain_row_reference(values)


def test_token_fast_path_matches_the_full_command_line(tmp_path):
    home = tmp_path / "h"
    env = {"PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}
    fast = run("token", "nope", home=home, env=env)
    assert fast.exit_code == 3 and fast.stderr.startswith("error: no token 'nope'\nhint:")
    via_home = run("--home", str(tmp_path / "other"), "token", "nope", home=home, env=env)
    assert via_home.exit_code == 3
    assert (tmp_path / "other" / "inventory.sqlite3").exists()
    # Any other form goes through Typer and says the same.
    full = run("--debug", "token", "nope", home=home, env=env)
    assert full.exit_code == 3 and "error: no token 'nope'" in full.stderr
    helped = run("token", "--help", home=home, env=env)
    assert helped.exit_code == 0 and "Print a valid access token" in helped.stdout
    code = (
        "import sys\nfrom tokenctl.__main__ import _plain_token_ref as f\n"
        "assert f(['token', 'x']) == (None, 'x')\n"
        "assert f(['--home', 'D', 'token', 'x']) == ('D', 'x')\n"
        "assert f(['token', '--help']) is None and f(['token', 'x', 'y']) is None\n"
        "assert f(['list']) is None\n"
    )
    checked = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stderr
