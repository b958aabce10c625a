"""`delete` on a terminal offers to retrieve a new token with the command it prints."""

from __future__ import annotations

import os
import select
import shlex
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest

import tokenctl.services.tokens as token_services
from tests.fakes import Cli, sealed_rows
from tests.proc import tokenctl
from tokenctl.services.oauth_options import LoginOptions
from tokenctl.services.tokens import RETRIEVE_QUESTION, AddRequest, add_command


def _add(cli: Cli, name: str = "acme", *extra: str):  # type: ignore[no-untyped-def]
    result = cli(
        "add", name, "--definition", "api-key", "--description", "Acme BV", "--secret-stdin",
        *extra, input="old-secret",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    return result


def test_yes_retrieves_a_new_token_with_the_printed_command(cli):
    _add(cli)
    result = cli("delete", "acme", tty=True, input="y\ny\n", hidden_answer="new-secret")
    assert result.exit_code == 0, result.stderr
    printed = "tokenctl add acme --definition api-key --description 'Acme BV' --secret-stdin"
    assert result.stdout == f"{printed}\n2\n"  # the command, then the new token's number
    assert f"{RETRIEVE_QUESTION} [y/N]: " in result.stderr
    assert "Added token #2 'acme' (API key)" in result.stderr
    token = cli("show", "acme", "--json").json()["token"]
    assert (token["number"], token["description"]) == (2, "Acme BV")
    stored = cli.stored("acme")
    assert stored is not None and stored.pass_code == "new-secret"
    assert len(sealed_rows(cli.home)) == 1  # the old token's secret went with it


def test_no_keeps_only_the_printed_command(cli):
    _add(cli)
    result = cli("delete", "acme", tty=True, input="y\nn\n", hidden_answer="never-asked")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("tokenctl add acme ")
    assert f"{RETRIEVE_QUESTION} [y/N]: " in result.stderr
    assert cli("list", "--json").json()["tokens"] == []
    assert sealed_rows(cli.home) == []


def test_never_asked_without_a_terminal_or_with_yes(cli):
    _add(cli, "a")
    _add(cli, "b")
    piped = cli("delete", "a", "--yes", input="y\n")
    assert piped.exit_code == 0 and RETRIEVE_QUESTION not in piped.stderr
    assert piped.stdout.startswith("tokenctl add a ")
    on_tty = cli("delete", "b", "--yes", tty=True, input="y\n", hidden_answer="x")
    assert on_tty.exit_code == 0 and RETRIEVE_QUESTION not in on_tty.stderr
    assert on_tty.stdout.startswith("tokenctl add b ")
    assert cli("list", "--json").json()["tokens"] == []


def test_not_offered_when_the_definition_is_gone(cli, tmp_path):
    (tmp_path / "def.toml").write_text(
        '[definitions.gone]\ntitle = "Gone"\nclassification = "Test"\nkind = "static"\n'
    )
    assert cli("definitions", "add", "--file", str(tmp_path / "def.toml")).exit_code == 0
    assert cli("add", "g", "-d", "gone", "--secret-stdin", input="s").exit_code == 0
    assert cli("definitions", "remove", "gone", "--force").exit_code == 0
    result = cli("delete", "g", tty=True, input="y\ny\n", hidden_answer="x")
    assert result.exit_code == 0, result.stderr
    assert RETRIEVE_QUESTION not in result.stderr
    assert result.stdout == "tokenctl add g --definition gone --secret-stdin\n"


REQUESTS = [
    AddRequest(name="acme", definition="api-key", secret_from_stdin=True, login=LoginOptions()),
    AddRequest(
        name="o1",
        definition="acme-env",
        description="Acme 'BV' \"x\" $HOME",
        identifier="svc acme",
        params={"environment": "42", "region": "eu west"},
        login=LoginOptions(tenant="t-1"),
    ),
    AddRequest(
        name="o2",
        definition="acme-books",
        authentication_code="ABCD-1234",
        login=LoginOptions(
            mode="device", open_browser=False, reuse_session=True, timeout=12.5, assume_yes=True
        ),
    ),
    AddRequest(name="o3", definition="acme-books", login=LoginOptions(mode="relay")),
    AddRequest(name="o4", definition="acme-books", login=None),
    AddRequest(
        name="s2",
        definition="api-key",
        expires_at=datetime(2027, 1, 31, 12, 0, tzinfo=UTC),
        login=LoginOptions(),
    ),
    AddRequest(
        name="s3", definition="api-key", expires_in=timedelta(days=30), login=LoginOptions()
    ),
]


@pytest.mark.parametrize("request_", REQUESTS, ids=lambda r: r.name)
def test_printed_command_makes_exactly_the_request(request_, cli, monkeypatch):
    """Parsed by the real command line, the printed command gives back the same request."""
    seen: list[AddRequest] = []

    def capture(ctx, request):  # type: ignore[no-untyped-def]
        seen.append(request)
        raise KeyboardInterrupt  # stop there: nothing to add

    monkeypatch.setattr(token_services, "add_token", capture)
    words = shlex.split(add_command(request_))
    assert words[:2] == ["tokenctl", "add"]
    result = cli(*words[1:])
    assert result.exit_code == 130, result.stderr
    assert seen == [request_]


# -- the real program on a real terminal, with the real keyring --------------------------


def _read_until(fd: int, wanted: bytes, seen: bytearray, deadline: float) -> None:
    while wanted not in seen:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"waited for {wanted!r}; got {bytes(seen)!r}"
        ready, _, _ = select.select([fd], [], [], remaining)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the child closed the terminal
                chunk = b""
            assert chunk, f"terminal closed before {wanted!r}; got {bytes(seen)!r}"
            seen.extend(chunk)


def test_yes_on_a_real_terminal_retrieves_a_new_pass_code(real_keyring, tmp_path):
    import pty

    home = tmp_path / "home"
    env = {**real_keyring.child_env(), "TOKENCTL_HOME": str(home)}
    env.pop("TOKENCTL_DEBUG", None)
    added = tokenctl(
        "add", "demo", "--definition", "api-key", "--description", "Demo", "--secret-stdin",
        home=home, env=env, input="old-pass-code",
    )  # fmt: skip
    assert added.exit_code == 0, added.stderr

    pid, fd = pty.fork()
    if pid == 0:  # the child: tokenctl on the terminal
        os.execve(sys.executable, [sys.executable, "-m", "tokenctl", "delete", "demo"], env)
    seen = bytearray()
    deadline = time.monotonic() + 60
    try:
        _read_until(fd, b"Delete token #1 'demo'? [y/N]: ", seen, deadline)
        os.write(fd, b"y\n")
        _read_until(fd, f"{RETRIEVE_QUESTION} [y/N]: ".encode(), seen, deadline)
        assert b"tokenctl add demo --definition api-key --description Demo --secret-stdin" in seen
        os.write(fd, b"y\n")
        _read_until(fd, b"API key: ", seen, deadline)
        os.write(fd, b"new-pass-code\n")
        _read_until(fd, b"Added token #2 'demo'", seen, deadline)
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0, bytes(seen)
    assert b"new-pass-code" not in seen  # the hidden prompt did not echo it
    assert tokenctl("token", "demo", home=home, env=env).stdout == "new-pass-code\n"
    assert tokenctl("show", "demo", "--json", home=home, env=env).json()["token"]["number"] == 2
