"""Text that others chose (descriptions, accounts, provider errors) cannot drive the terminal."""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.oauth_support import ScriptedBrowser, configure, fetch, query_of
from tokenctl.errors import AuthorizationError, error_text
from tokenctl.textsafe import safe_json, safe_line, safe_text, shell_join

#: Clears the screen (CSI 2J), retitles the window (OSC 0 ... BEL), colours with the 8-bit
#: CSI (0x9b), rings the bell, backspaces, returns the carriage, DEL and a C1 NEL (0x85).
EVIL = "Acme\x1b[2J\x1b]0;owned\x07\x9b31mred\x08\r\x7f\x85 [red]x[/red] [link=https://e.example]y"
#: Raw control characters: C0 but TAB and line feed (the layout), DEL, C1.
RAW = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _no_raw_control(text: str) -> None:
    """No control character but the layout's TAB and line feed; no rich markup eaten."""
    assert RAW.search(text) is None, repr(text)


def _no_raw_control_in_colour(text: str) -> None:
    """As _no_raw_control, but rich's own SGR colour sequences (ESC [ ... m) are allowed."""
    _no_raw_control(re.sub("\x1b\\[[0-9;]*m", "", text))


def add_evil(cli: Any, name: str = "acme") -> None:
    result = cli(
        "add",
        name,
        "--definition",
        "api-key",
        "--description",
        EVIL,
        "--expires-in",
        "5d",
        "--secret-stdin",
        input="s3cret",
    )
    assert result.exit_code == 0, result.stderr


# -- the mechanism ---------------------------------------------------------------------


def test_safe_line_escapes_every_control_character_visibly():
    assert safe_line("a\x1b[2Jb") == "a\\x1b[2Jb"
    assert safe_line("\x9b31m\x07\x08\x7f\x85") == "\\x9b31m\\x07\\x08\\x7f\\x85"
    assert safe_line("tab\there\nnew\rcr") == "tab\\there\\nnew\\rcr"
    assert safe_line("C:\\Users\\é ✓ [red]") == "C:\\Users\\é ✓ [red]"  # left alone
    assert safe_text("two\nlines\tand \x1b]0;t\x07") == "two\nlines\tand \\x1b]0;t\\x07"


@given(st.text())
def test_safe_line_leaves_no_control_character_and_keeps_the_rest(text):
    safe = safe_line(text)
    # Controls, and the invisible characters that can disguise a name (bidi controls,
    # zero-width characters, line and paragraph separators, the BOM), are escaped.
    unsafe = "[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]"
    assert re.search(unsafe, safe) is None
    if re.search(unsafe, text) is None:
        assert safe == text


@given(st.text())
def test_json_escape_parses_back_to_the_exact_value(text):
    document = safe_json(json.dumps({"v": text}, ensure_ascii=False))
    assert re.search("[\x7f-\x9f]", document) is None
    assert json.loads(document) == {"v": text}


def test_error_text_is_one_safe_line_per_part():
    error = AuthorizationError(
        "the provider answered x: \x1b]0;t\x07\nerror: forged", hint="\x9b2J"
    )
    assert error_text(error) == (
        "error: the provider answered x: \\x1b]0;t\\x07\\nerror: forged\nhint: \\x9b2J\n"
    )


def test_shell_join_quotes_control_characters_so_bash_recreates_them():
    words = ["printf", "%s", EVIL + "'\\\t\n"]
    line = shell_join(words)
    _no_raw_control(line.replace("\n", "\x01"))  # not even a line break
    assert "\n" not in line and "\t" not in line
    done = subprocess.run(["bash", "-c", line], capture_output=True, env={"LANG": "C.UTF-8"})
    assert done.stdout.decode() == words[2]
    assert shell_join(["add", "plain name", "x"]) == "add 'plain name' x"  # as shlex.join


# -- the commands ----------------------------------------------------------------------


def test_list_show_delete_neutralise_a_description_and_json_keeps_it(cli):
    add_evil(cli)
    piped = cli("list")
    _no_raw_control(piped.stdout)
    fields = piped.stdout.rstrip("\n").split("\t")
    assert len(fields) == 8  # the \r or TAB cannot add a field or a line
    assert fields[3] == safe_line(EVIL)
    assert "\\x1b[2J" in fields[3] and "\\x9b31m" in fields[3]

    table = cli("list", tty=True, color=True)
    _no_raw_control_in_colour(table.stdout)
    assert "\x1b]" not in table.stdout and "\x1b[2J" not in table.stdout
    assert "[red]x[/red]" in table.stdout and "[link=https://e.example]y" in table.stdout
    assert "\x1b]8;" not in table.stdout  # no hyperlink made of the markup

    for tty in (False, True):
        shown = cli("show", "acme", tty=tty, color=tty)
        _no_raw_control_in_colour(shown.stdout)
        _no_raw_control(shown.stderr)
        assert "\\x1b]0;owned\\x07" in shown.stdout
        assert "[red]x[/red]" in shown.stdout

    assert cli("list", "--json").json()["tokens"][0]["description"] == EVIL
    shown_json = cli("show", "acme", "--json")
    assert re.search("[\x7f-\x9f]", shown_json.stdout) is None  # even DEL and C1 escaped
    assert shown_json.json()["token"]["description"] == EVIL

    deleted = cli("delete", "acme", "--yes")
    assert deleted.exit_code == 0, deleted.stderr
    _no_raw_control(deleted.stdout.replace("\n", ""))
    _no_raw_control(deleted.stderr)
    [command] = deleted.stdout.splitlines()
    assert "--description $'Acme\\x1b[2J\\x1b]0;owned\\x07\\u009b31m" in command
    # The printed command, run by a shell, gives back the exact description.
    echo = command.replace("tokenctl add", "printf '%s\\n'", 1)
    done = subprocess.run(["bash", "-c", echo], capture_output=True, env={"LANG": "C.UTF-8"})
    assert EVIL in done.stdout.decode().split("\n")


def test_stderr_status_warning_and_question_are_neutralised():
    import io

    from tokenctl.iostreams import IOStreams

    err = io.StringIO()
    streams = IOStreams(stdin=io.StringIO("y\n"), stdout=io.StringIO(), stderr=err)
    streams.stdin_tty = streams.stderr_tty = True
    streams.status("tenants:\n  1. \x1b]0;owned\x07Acme\tBV")  # layout kept, ESC not
    streams.warn("the provider said \x9b2J\nwarning: forged")  # one line
    assert streams.confirm("Delete \x1b[2J?", flag="--yes")
    assert err.getvalue() == (
        "tenants:\n  1. \\x1b]0;owned\\x07Acme\tBV\n"
        "warning: the provider said \\x9b2J\\nwarning: forged\n"
        "Delete \\x1b[2J? [y/N]: "
    )


# -- from the provider: an account in the id token, an error from the callback ------------


@pytest.mark.peers
def test_an_account_from_the_id_token_is_neutralised(ocli, oidc, tmp_path):
    from tests.oauth_support import EVIL_EMAIL

    name = configure(ocli, tmp_path, oidc)
    ocli.browser = ScriptedBrowser(oidc, user="mallory", password="mallory-password")
    added = ocli("add", "acme", "--definition", name, "--yes")
    assert added.exit_code == 0, added.stderr
    _no_raw_control(added.stderr)
    assert safe_line(EVIL_EMAIL) in added.stderr  # "..., account \x1b]0;..."
    assert ocli("show", "acme", "--json").json()["token"]["account"] == EVIL_EMAIL
    for tty in (False, True):
        for command in ("list", "show"):
            result = ocli(command, *(["acme"] if command == "show" else []), tty=tty, color=tty)
            _no_raw_control_in_colour(result.stdout)
            assert safe_line(EVIL_EMAIL) in result.stdout


@pytest.mark.peers
def test_an_error_description_from_the_callback_is_neutralised(ocli, oidc, tmp_path):
    name = configure(ocli, tmp_path, oidc)
    seen: list[tuple[int, str]] = []

    def browser(url: str) -> None:
        # The real provider's login, then a callback with the right state carrying an error.
        final = oidc.browser_login(url, "alice", "alice-password", follow_to_callback=False)
        query = query_of(final)
        forged = {
            "state": query["state"],
            "iss": query["iss"],
            "error": "server_error\x1b[2J",
            "error_description": "\x1b]0;owned\x07\x9b31mred\r\nerror: forged",
        }
        seen.append(fetch(final.split("?")[0] + "?" + urlencode(forged)))

    ocli.browser = browser
    result = ocli("add", "acme", "--definition", name, "--yes", "--timeout", "20")
    assert result.exit_code == 5, result.stderr
    # The 'browser' is a thread: tokenctl may be done before it has noted the answer.
    for _ in range(100):
        if seen:
            break
        time.sleep(0.05)
    assert seen and seen[0][0] == 200
    _no_raw_control(result.stderr)
    assert "\\x1b]0;owned\\x07\\x9b31mred\\r\\nerror: forged" in result.stderr
    assert "\nerror: forged" not in result.stderr  # no forged line


class _RefusingTokenEndpoint(BaseHTTPRequestHandler):
    """A token endpoint that refuses every code with control characters in its answer."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        body = json.dumps(
            {"error": "invalid_grant\x1b[2J", "error_description": "\x1b]0;owned\x07\x9b31m\x85"}
        ).encode()
        self.send_response(400)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture
def refusing_token_endpoint() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _RefusingTokenEndpoint)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_an_error_from_the_token_endpoint_is_neutralised(ocli, tmp_path, refusing_token_endpoint):
    base = refusing_token_endpoint
    (tmp_path / "d.toml").write_text(
        "[definitions.fake]\n"
        'title = "Fake"\nclassification = "Test"\nkind = "oauth2"\n'
        "[definitions.fake.oauth2]\n"
        f'authorization_endpoint = "{base}/auth"\ntoken_endpoint = "{base}/token"\n'
        'client_id = "c"\nscopes = ["read"]\n'
    )
    assert ocli("definitions", "add", "--file", str(tmp_path / "d.toml")).exit_code == 0

    def browser(url: str) -> None:  # the "provider" grants at once: straight to the callback
        params = parse_qs(urlsplit(url).query)
        callback = (
            params["redirect_uri"][0]
            + "?"
            + urlencode({"code": "c0de", "state": params["state"][0]})
        )
        fetch(callback)

    ocli.browser = browser
    result = ocli("add", "x", "--definition", "fake", "--yes", "--timeout", "20")
    assert result.exit_code == 5, result.stderr
    _no_raw_control(result.stderr)
    assert "invalid_grant\\x1b[2J" in result.stderr
    assert "\\x1b]0;owned\\x07\\x9b31m\\x85" in result.stderr


def test_prompt_labels_and_choices_are_escaped_too():
    import io

    from tokenctl.iostreams import IOStreams

    stderr = io.StringIO()
    streams = IOStreams(
        stdin=io.StringIO("1\n"),
        stdout=io.StringIO(),
        stderr=stderr,
        stdin_tty=True,
        stdout_tty=False,
        stderr_tty=True,
    )
    picked = streams.choose("Tenant?", ["Acme\n  2. Evil\u202e", "Beta"], flag="--tenant")
    assert picked == 0
    shown = stderr.getvalue()
    assert "\u202e" not in shown and "Acme\\n  2. Evil\\u202e" in shown
    streams.stdin = io.StringIO("x\n")
    streams.read_line("Pass\x1b]0;title\x07code")
    assert "\x1b" not in stderr.getvalue() and "\x07" not in stderr.getvalue()
