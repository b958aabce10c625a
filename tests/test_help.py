"""`--help` names every value as docs/commands.md does, never by its Python type."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tokenctl.cli.app import COMMANDS, GROUPS, build_app, build_subcommand

DOCS = (Path(__file__).parent.parent / "docs" / "commands.md").read_text(encoding="utf-8")

#: How Typer renders a type when no metavar names the value: `<str>`, `<int range>`,
#: `<float>`, `<path>`, `<file>`, `<list[str]>`, `<a|b>`, and `{name}` for a required argument.
TYPE_RENDERING = re.compile(r"<[a-z][^>]*>|\{[a-z_]+\}")
#: An option with its value in help output: `--expires-in DURATION`, `--param KEY=VALUE`.
OPTION_WITH_VALUE = re.compile(r"(--[a-z][a-z-]*) ([A-Z][A-Z_=]*)\b")


def _every_command_path() -> list[tuple[str, ...]]:
    paths: list[tuple[str, ...]] = [(), *((name,) for name in COMMANDS)]
    for group in GROUPS:
        paths.append((group,))
        paths.extend((group, sub) for sub in build_subcommand(group).commands)  # type: ignore[attr-defined]
    return paths


def _help(path: tuple[str, ...]) -> str:
    result = CliRunner().invoke(build_app(), [*path, "--help"])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("path", _every_command_path(), ids=" ".join)
def test_help_shows_no_python_types(path):
    text = _help(path)
    assert TYPE_RENDERING.findall(text) == []


@pytest.mark.parametrize("path", _every_command_path(), ids=" ".join)
def test_every_option_value_is_named_as_the_docs_name_it(path):
    for option, metavar in OPTION_WITH_VALUE.findall(_help(path)):
        assert f"{option} {metavar}" in DOCS, f"tokenctl {' '.join(path)}: {option} {metavar}"


@pytest.mark.parametrize(
    ("path", "usage", "shown"),
    [
        (
            ("add",),
            "Usage: tokenctl add [OPTIONS] NAME\n",
            [
                "--definition DEFINITION",
                "--expires-at TIME",
                "--expires-in DURATION",
                "--timeout SECONDS",
                "--param KEY=VALUE",
                "--tenant ID",
                "--code CODE",
            ],
        ),
        (("show",), "Usage: tokenctl show [OPTIONS] REF\n", ["  REF  "]),
        (
            ("renew",),
            "Usage: tokenctl renew [OPTIONS] [REF]\n",
            [
                "--within DURATION",
                "--definition DEFINITION",
                "--concurrency N",
                "--timeout SECONDS",
            ],
        ),
        (("check",), "Usage: tokenctl check [OPTIONS] [REF]...\n", ["--within DURATION"]),
        (("delete",), "Usage: tokenctl delete [OPTIONS] REF\n", []),
        (("exec",), "Usage: tokenctl exec [OPTIONS] REF [COMMAND]...\n", ["--env NAME"]),
        (
            ("list",),
            "Usage: tokenctl list [OPTIONS]\n",
            ["--status STATUS", "--state STATE", "--definition DEFINITION"],
        ),
        (
            ("definitions", "configure"),
            "Usage: tokenctl definitions configure [OPTIONS] NAME\n",
            ["--redirect-port PORT", "--redirect-uri URL", "--client-id ID"],
        ),
        (
            ("definitions", "add"),
            "Usage: tokenctl definitions add [OPTIONS] [NAME]\n",
            ["--file FILE", "--issuer URL", "--scope SCOPE"],
        ),
        (
            ("definitions", "relay-page"),
            "Usage: tokenctl definitions relay-page [OPTIONS] [NAME]\n",
            ["--port PORT"],
        ),
        ((), "Usage: tokenctl [OPTIONS] COMMAND [ARGS]...\n", ["--home DIR"]),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, tuple) else None,
)
def test_key_options_show_the_documented_metavar(path, usage, shown):
    text = _help(path)
    assert text.startswith(usage), text
    for piece in shown:
        assert piece in text


def test_timeout_default_is_shown_as_written():
    assert "(default 300)." in _help(("add",))
