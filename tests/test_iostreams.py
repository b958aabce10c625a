"""IOStreams questions: prompt() and choose() only on a terminal, read_line() also from a pipe."""

from __future__ import annotations

import io

import pytest

from tokenctl.errors import UsageError
from tokenctl.iostreams import IOStreams


def streams(answer: str = "", *, stdin_tty: bool, stderr_tty: bool) -> IOStreams:
    return IOStreams(
        stdin=io.StringIO(answer),
        stdout=io.StringIO(),
        stderr=io.StringIO(),
        stdin_tty=stdin_tty,
        stderr_tty=stderr_tty,
    )


def stderr_of(streams: IOStreams) -> str:
    assert isinstance(streams.stderr, io.StringIO)
    return streams.stderr.getvalue()


def unread(streams: IOStreams) -> str:
    return streams.stdin.read()


def test_prompt_on_a_terminal_shows_the_label_and_default():
    tty = streams("typed\n", stdin_tty=True, stderr_tty=True)
    assert tty.prompt("Name", flag="--name NAME", default="x") == "typed"
    assert stderr_of(tty) == "Name [x]: "
    empty = streams("\n", stdin_tty=True, stderr_tty=True)
    assert empty.prompt("Name", flag="--name NAME", default="x") == "x"
    assert empty.prompt("Name", flag="--name NAME") == ""  # stdin is at its end


@pytest.mark.parametrize(
    ("stdin_tty", "stderr_tty"), [(False, False), (True, False), (False, True)]
)
def test_prompt_without_a_terminal_fails_fast_naming_the_flag(stdin_tty, stderr_tty):
    piped = streams("an answer nobody asked for\n", stdin_tty=stdin_tty, stderr_tty=stderr_tty)
    with pytest.raises(UsageError) as raised:
        piped.prompt("Name", flag="--name NAME")
    assert raised.value.hint == "pass --name NAME"
    assert "no terminal" in raised.value.message
    assert stderr_of(piped) == ""  # no question shown
    assert unread(piped) == "an answer nobody asked for\n"  # and nothing read


def test_choose_on_a_terminal_lists_numbered_options_and_returns_the_index():
    tty = streams("2\n", stdin_tty=True, stderr_tty=True)
    picked = tty.choose("Which one?", ["Acme BV", "Acme Holding"], flag="--tenant ID")
    assert picked == 1
    assert stderr_of(tty) == "  1. Acme BV\n  2. Acme Holding\nWhich one? [1]: "
    default = streams("\n", stdin_tty=True, stderr_tty=True)
    assert default.choose("Which one?", ["a", "b", "c"], flag="--x X", default=2) == 2
    assert stderr_of(default).endswith("Which one? [3]: ")


@pytest.mark.parametrize("answer", ["3\n", "0\n", "two\n", "-1\n"])
def test_choose_refuses_an_answer_that_is_no_listed_number(answer):
    tty = streams(answer, stdin_tty=True, stderr_tty=True)
    with pytest.raises(UsageError) as raised:
        tty.choose("Which tenant?", ["a", "b"], flag="--tenant ID", item="tenant")
    assert raised.value.message == f"no tenant number {answer.strip()!r}"
    assert raised.value.hint == "pass --tenant ID"


def test_choose_without_a_terminal_fails_fast_naming_the_flag():
    piped = streams("1\n", stdin_tty=False, stderr_tty=False)
    with pytest.raises(UsageError) as raised:
        piped.choose("Which tenant?", ["a", "b"], flag="--tenant ID")
    assert raised.value.hint == "pass --tenant ID"
    assert stderr_of(piped) == ""  # not even the list
    assert unread(piped) == "1\n"


def test_read_line_shows_its_label_only_on_a_terminal():
    tty = streams("  https://x/cb?code=1  \n", stdin_tty=True, stderr_tty=True)
    assert tty.read_line("Redirected URL") == "https://x/cb?code=1"
    assert stderr_of(tty) == "Redirected URL: "
    piped = streams("https://x/cb?code=2\nmore\n", stdin_tty=False, stderr_tty=False)
    assert piped.read_line("Redirected URL") == "https://x/cb?code=2"
    assert stderr_of(piped) == ""
    assert unread(piped) == "more\n"  # one line only
