"""Times and lifetimes at the edges: the command line, the files, stored rows, providers.

Provider answers come from a small real token endpoint (stdlib http.server on 127.0.0.1)
that rotates refresh tokens, rejects a used one, and sends whatever lifetime a test asks.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import pytest

from tests.fakes import Cli
from tests.oauth_support import add_books_token, stored, write_books

# -- the command line -----------------------------------------------------------------------


def add_static(cli: Cli, *extra: str) -> Any:
    return cli("add", "x", "--definition", "api-key", "--secret-stdin", *extra, input="s3cret")


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (("--expires-in", "99999999999999d"), "the longest is 36500d"),
        (("--expires-in", "99999999999999999999d"), "the longest is 36500d"),
        (("--expires-at", "0001-01-01T00:00:00+01:00"), "out of range"),
        (("--expires-at", "9999-12-31T23:59:59-01:00"), "out of range"),
        (("--expires-at", "0999-12-31"), "out of range"),
    ],
)
def test_out_of_range_add_is_a_usage_error(cli: Cli, flags: tuple[str, ...], says: str) -> None:
    result = add_static(cli, *flags)
    assert result.exit_code == 2, result.stderr
    assert says in result.stderr
    assert "internal error" not in result.stderr
    assert cli("list", "--json").json()["tokens"] == []  # nothing half-stored


def test_out_of_range_renew_and_check_are_usage_errors(cli: Cli) -> None:
    assert add_static(cli, "--expires-in", "30d").exit_code == 0
    for args in (
        ("check", "--within", "99999999999999d"),
        ("renew", "--all", "--within", "99999999999999d"),
        ("renew", "x", "--secret-stdin", "--expires-in", "99999999999999d"),
        ("renew", "x", "--secret-stdin", "--expires-at", "0001-01-01T00:00:00+01:00"),
    ):
        result = cli(*args, input="new")
        assert result.exit_code == 2, (args, result.stderr)
        assert "internal error" not in result.stderr
        assert "error: " in result.stderr


def test_the_longest_duration_and_the_last_time_are_accepted(cli: Cli) -> None:
    assert add_static(cli, "--expires-in", "36500d").exit_code == 0
    assert cli("check", "--within", "36500d").exit_code == 10  # everything expires within
    later = cli("add", "y", "--definition", "api-key", "--secret-stdin", "--expires-at",
                "9999-12-31T23:59:59Z", input="s")  # fmt: skip
    assert later.exit_code == 0, later.stderr
    expiries = {t["name"]: t["expires_at"] for t in cli("list", "--json").json()["tokens"]}
    assert expiries["y"] == "9999-12-31T23:59:59Z"


# -- huge durations in the files ------------------------------------------------------------


BOOKS_WITH_A_HUGE_IDLE_LIFETIME = (
    "[definitions.books]\n"
    'title = "Books"\nkind = "oauth2"\n'
    "[definitions.books.oauth2]\n"
    'token_endpoint = "https://books.example/token"\n'
    'authorization_endpoint = "https://books.example/authorize"\n'
    'client_id = "c"\n'
    "[definitions.books.lifetimes]\n"
    'refresh_token_idle = "99999999999999999999d"\n'
)


@pytest.mark.parametrize(
    ("file", "content", "setting", "commands"),
    [
        (
            "config.toml",
            'expiring_window = "99999999999999999999d"\n',
            "expiring_window",
            [("list",), ("check",), ("doctor",)],
        ),
        (
            "definitions.toml",
            BOOKS_WITH_A_HUGE_IDLE_LIFETIME,
            "refresh_token_idle",
            [("list",), ("check",), ("definitions", "list"), ("doctor",)],
        ),
    ],
)
def test_a_huge_duration_in_a_file_names_the_file_and_setting(
    cli: Cli, file: str, content: str, setting: str, commands: list[tuple[str, ...]]
) -> None:
    cli.home.mkdir(parents=True, exist_ok=True)
    (cli.home / file).write_text(content)
    for args in commands:
        result = cli(*args)
        assert result.exit_code == 1, (args, result.stderr)
        said = result.stdout + result.stderr  # doctor reports on stdout
        assert file in said and setting in said
        assert "internal error" not in said


# -- rows written by older versions ---------------------------------------------------------


def test_a_stored_three_digit_year_does_not_break_the_inventory(cli: Cli) -> None:
    """Older versions stored --expires-at 0999-12-31 as "999-12-31T00:00:00Z"."""
    assert add_static(cli, "--expires-in", "30d").exit_code == 0
    assert cli("add", "y", "--definition", "api-key", "--secret-stdin", input="s").exit_code == 0
    with sqlite3.connect(cli.home / "inventory.sqlite3") as connection:
        connection.execute("UPDATE tokens SET expires_at = '999-12-31T00:00:00Z' WHERE name = 'x'")
    connection.close()
    listed = cli("list", "--json")
    assert listed.exit_code == 0, listed.stderr
    expiries = {t["name"]: t["expires_at"] for t in listed.json()["tokens"]}
    assert expiries["x"] == "0999-12-31T00:00:00Z"  # read back, nothing lost
    assert cli("list").exit_code == 0
    shown = cli("show", "x")
    assert shown.exit_code == 0 and "0999-12-31" in shown.stdout
    checked = cli("check")
    assert checked.exit_code == 11 and "expired" in checked.stdout
    assert cli("token", "y").stdout == "s\n"
    deleted = cli("delete", "x", "--yes")
    assert deleted.exit_code == 0, deleted.stderr
    assert [t["name"] for t in cli("list", "--json").json()["tokens"]] == ["y"]


# -- provider lifetimes ---------------------------------------------------------------------


class TokenEndpoint:
    """A token endpoint that rotates refresh tokens and refuses a used one (invalid_grant).

    ``lifetime`` is the raw JSON text sent as ``expires_in`` (``None``: the field is left
    out); ``refresh_lifetime`` likewise for ``refresh_expires_in``.
    """

    def __init__(self) -> None:
        self.lifetime: str | None = "3600"
        self.refresh_lifetime: str | None = None
        self.issued = 0
        self.valid_refresh: set[str] = set()
        self.grants: list[str] = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                status, body = endpoint.answer(form)
                payload = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def answer(self, form: dict[str, str]) -> tuple[int, str]:
        grant = form.get("grant_type", "")
        self.grants.append(grant)
        if grant == "refresh_token":
            if form.get("refresh_token") not in self.valid_refresh:
                return 400, json.dumps({"error": "invalid_grant", "error_description": "used"})
            self.valid_refresh.remove(form["refresh_token"])  # rotation: one use each
        elif grant != "authorization_code":
            return 400, json.dumps({"error": "unsupported_grant_type"})
        self.issued += 1
        self.valid_refresh.add(f"RT-{self.issued}")
        fields = [
            f'"access_token": "AT-{self.issued}"',
            '"token_type": "Bearer"',
            f'"refresh_token": "RT-{self.issued}"',
            '"scope": "books"',
        ]
        if self.lifetime is not None:
            fields.append(f'"expires_in": {self.lifetime}')
        if self.refresh_lifetime is not None:
            fields.append(f'"refresh_expires_in": {self.refresh_lifetime}')
        return 200, "{" + ", ".join(fields) + "}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def endpoint() -> Iterator[TokenEndpoint]:
    server = TokenEndpoint()
    yield server
    server.stop()


def setup_books(cli: Cli, endpoint: TokenEndpoint) -> None:
    write_books(cli, f"{endpoint.url}/token", f"{endpoint.url}/authorize")


def expiry_of(cli: Cli, name: str = "acme") -> Any:
    return cli("show", name, "--json").json()["token"]["expires_at"]


UNUSABLE = {
    '"soon"': "'soon'",
    "1e300": "1e+300",
    "1e400": "inf",  # JSON that reads as infinity
    "Infinity": "inf",
    "NaN": "nan",
    "-1e20": "-1e+20",
    "-40000000000": "-40000000000",  # would be year 758
    "300000000000": "300000000000",  # past year 9999
    "true": "True",
}


@pytest.mark.parametrize("lifetime", UNUSABLE)
def test_renew_keeps_the_rotated_token_set_when_the_lifetime_is_unusable(
    cli: Cli, endpoint: TokenEndpoint, lifetime: str
) -> None:
    setup_books(cli, endpoint)
    add_books_token(cli)
    assert expiry_of(cli) is not None
    endpoint.lifetime = lifetime
    renewed = cli("renew", "acme")
    assert renewed.exit_code == 0, renewed.stderr
    note = (
        f"the provider sent an unusable lifetime (expires_in={UNUSABLE[lifetime]}); "
        "the access token's expiry is unknown"
    )
    assert renewed.stderr.count(note) == 1, renewed.stderr
    assert stored(cli).refresh_token == "RT-2"  # the new refresh token is kept
    assert expiry_of(cli) is None
    assert cli("list", "--json").exit_code == 0
    # The next renew works with the rotated token (the provider refuses RT-1 now).
    endpoint.lifetime = "3600"
    again = cli("renew", "acme")
    assert again.exit_code == 0, again.stderr
    assert "unusable" not in again.stderr
    assert stored(cli).refresh_token == "RT-3"
    assert expiry_of(cli) is not None


def test_renew_all_keeps_the_rotated_token_sets_and_says_so_once(
    cli: Cli, endpoint: TokenEndpoint
) -> None:
    setup_books(cli, endpoint)
    add_books_token(cli, "acme")
    add_books_token(cli, "beta")
    before = {name: stored(cli, name).refresh_token for name in ("acme", "beta")}
    endpoint.lifetime = '"soon"'
    endpoint.refresh_lifetime = "1e400"
    result = cli("renew", "--all", "--json")
    assert result.exit_code == 0, result.stderr
    outcomes = {i["name"]: i["outcome"] for i in result.json()["renewals"]}
    assert outcomes == {"acme": "refreshed", "beta": "refreshed"}
    for name in ("acme", "beta"):
        access = (
            f"{name}: the provider sent an unusable lifetime (expires_in='soon'); "
            "the access token's expiry is unknown"
        )
        refresh = (
            f"{name}: the provider sent an unusable lifetime (refresh_expires_in=inf); "
            "the refresh token's expiry is unknown"
        )
        assert result.stderr.count(access) == 1, result.stderr
        assert result.stderr.count(refresh) == 1, result.stderr
        kept = stored(cli, name).refresh_token
        assert kept != before[name] and kept in endpoint.valid_refresh
        assert expiry_of(cli, name) is None
    # The rotated tokens work: a second pass renews both again.
    endpoint.lifetime = "3600"
    endpoint.refresh_lifetime = None
    again = cli("renew", "--all", "--json")
    assert again.exit_code == 0, again.stderr
    assert {i["outcome"] for i in again.json()["renewals"]} == {"refreshed"}
    assert "unusable" not in again.stderr


def test_login_keeps_the_token_set_when_the_lifetime_is_unusable(
    cli: Cli, endpoint: TokenEndpoint
) -> None:
    setup_books(cli, endpoint)
    endpoint.lifetime = "-1e20"
    added = add_books_token(cli)
    note = (
        "the provider sent an unusable lifetime (expires_in=-1e+20); "
        "the access token's expiry is unknown"
    )
    assert added.stderr.count(note) == 1, added.stderr
    assert stored(cli).refresh_token == "RT-1"
    assert expiry_of(cli) is None
    endpoint.lifetime = "3600"
    assert cli("renew", "acme").exit_code == 0
    assert stored(cli).refresh_token == "RT-2"


def test_a_numeric_string_lifetime_is_used(cli: Cli, endpoint: TokenEndpoint) -> None:
    setup_books(cli, endpoint)
    endpoint.lifetime = '"3600"'
    added = add_books_token(cli)
    assert "unusable" not in added.stderr
    assert expiry_of(cli) == "2026-11-23T13:00:00Z"  # the fixed clock plus one hour
