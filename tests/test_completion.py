"""Shell completion through Typer's mechanism: the real program, each shell's protocol."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fakes import HEAVY, Cli

BIN = str(Path(sys.executable).parent)
#: Runs tokenctl as the console script does, then names the heavy modules it imported.
PROBE = (
    "import sys\n"
    "from tokenctl.__main__ import main\n"
    "sys.argv = ['tokenctl']\n"
    "try:\n    main()\nexcept SystemExit:\n    pass\n"
    "sys.stdout.flush()\n"
    f"heavy = sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})\n"
    "built = sorted(m for m in sys.modules if m.startswith('tokenctl.cli.'))\n"
    "print(repr((heavy, built)), file=sys.stderr)\n"
)


def _shell_env(shell: str, line: str) -> dict[str, str]:
    """The environment each shell's completion script sets (typer/_completion_shared.py)."""
    words = line.split(" ")
    if shell == "bash":
        return {
            "_TOKENCTL_COMPLETE": "complete_bash",
            "COMP_WORDS": line,
            "COMP_CWORD": str(len(words) - 1),
        }
    if shell in ("zsh", "fish"):
        extra = {"_TYPER_COMPLETE_FISH_ACTION": "get-args"} if shell == "fish" else {}
        return {"_TOKENCTL_COMPLETE": f"complete_{shell}", "_TYPER_COMPLETE_ARGS": line, **extra}
    return {  # powershell, pwsh
        "_TOKENCTL_COMPLETE": f"complete_{shell}",
        "_TYPER_COMPLETE_ARGS": line,
        "_TYPER_COMPLETE_WORD_TO_COMPLETE": words[-1],
    }


def _candidates(shell: str, output: str) -> list[str]:
    """The words a shell would offer, from the program's answer in that shell's format."""
    if shell == "bash":
        return [line for line in output.splitlines() if line]
    if shell == "zsh":
        return re.findall(r'^\(*"((?:[^"]|"")*)"', output.replace("_arguments '*: :((", ""), re.M)
    if shell == "fish":
        return [line.split("\t")[0] for line in output.splitlines()]
    return [line.split(":::")[0] for line in output.splitlines()]


def complete(shell: str, line: str, home: Path, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    """Ask the real program for the completions of ``line``; (candidates, heavy, built)."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        capture_output=True,
        text=True,
        env={
            "PATH": f"{BIN}:/usr/bin:/bin",
            "TOKENCTL_HOME": str(home),
            **(env or {}),
            **_shell_env(shell, line),
        },
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    *noise, report = result.stderr.strip().splitlines()
    assert noise == [], result.stderr  # nothing else on stderr: no message, no traceback
    heavy, built = ast.literal_eval(report)
    return _candidates(shell, result.stdout), heavy, built


SHELLS = ["bash", "zsh", "fish", "powershell", "pwsh"]


@pytest.fixture
def inventory(tmp_path):  # type: ignore[no-untyped-def]
    """A home with three tokens (the fake keyring holds their secrets)."""
    cli = Cli(home=tmp_path / "home")
    for name in ("acme-exact", "acme-xero", "beta-books"):
        added = cli("add", name, "--definition", "api-key", "--secret-stdin", input="k")
        assert added.exit_code == 0, added.stderr
    return cli.home


@pytest.mark.parametrize("shell", SHELLS)
def test_command_names(shell, tmp_path):
    candidates, heavy, built = complete(shell, "tokenctl d", tmp_path / "home")
    assert candidates == ["delete", "disable", "doctor", "definitions"]
    assert heavy == []
    assert built == ["tokenctl.cli.app", "tokenctl.cli.coercion"]  # no command was built


@pytest.mark.parametrize("shell", SHELLS)
def test_token_names_from_the_inventory(shell, inventory):
    candidates, heavy, built = complete(shell, "tokenctl show acme-", inventory)
    assert candidates == ["acme-exact", "acme-xero"]
    assert heavy == []
    assert "tokenctl.cli.show" in built and "tokenctl.cli.add" not in built
    every, _, _ = complete(shell, "tokenctl delete ", inventory)
    assert every == ["acme-exact", "acme-xero", "beta-books"]


@pytest.mark.parametrize("shell", SHELLS)
def test_token_numbers_once_a_digit_is_typed(shell, inventory):
    candidates, heavy, _ = complete(shell, "tokenctl renew 2", inventory)
    assert candidates == ["2"]
    assert heavy == []


@pytest.mark.parametrize("shell", SHELLS)
def test_definition_names(shell, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "definitions.toml").write_text(
        '[definitions.zeta-local]\ntitle = "Zeta"\nclassification = "Test"\nkind = "static"\n'
    )
    candidates, heavy, _ = complete(shell, "tokenctl add x --definition basic", home)
    assert candidates == ["basic-credentials"]
    assert heavy == []
    user, _, _ = complete(shell, "tokenctl definitions show zet", home)
    assert user == ["zeta-local"]
    listed, _, _ = complete(shell, "tokenctl list --definition api", home)
    assert listed == ["api-key"]


@pytest.mark.parametrize("shell", SHELLS)
def test_options_of_a_command(shell, tmp_path):
    candidates, heavy, _ = complete(shell, "tokenctl add x --expires-", tmp_path / "home")
    assert candidates == ["--expires-at", "--expires-in"]
    assert heavy == []


def test_home_option_on_the_line_wins(inventory, tmp_path):
    elsewhere = tmp_path / "other"
    candidates, _, _ = complete("bash", f"tokenctl --home {inventory} show beta", elsewhere)
    assert candidates == ["beta-books"]
    assert not elsewhere.exists()


def test_no_inventory_offers_nothing_and_creates_none(tmp_path):
    home = tmp_path / "home"
    candidates, _, _ = complete("bash", "tokenctl show ", home)
    assert candidates == []
    assert not (home / "inventory.sqlite3").exists()


def test_a_damaged_inventory_offers_nothing_quietly(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "inventory.sqlite3").write_bytes(b"not a database" * 100)
    candidates, _, _ = complete("zsh", "tokenctl show ", home)  # asserts an empty stderr
    assert candidates == []


@pytest.mark.parametrize(
    ("shell", "marker"),
    [
        ("bash", "complete -o default -F _tokenctl_completion tokenctl"),
        ("zsh", "compdef _tokenctl_completion tokenctl"),
        ("fish", "complete --command tokenctl"),
        ("powershell", "Register-ArgumentCompleter -Native -CommandName tokenctl"),
        ("pwsh", "Register-ArgumentCompleter -Native -CommandName tokenctl"),
    ],
)
def test_show_completion_prints_each_shells_script(shell, marker, tmp_path):
    # Typer detects the shell from the parent processes; `exec -a` names the parent.
    result = subprocess.run(
        [
            "bash",
            "-c",
            f'exec -a {shell} bash -c "$0 -m tokenctl --show-completion; true"',
            sys.executable,
        ],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "TOKENCTL_HOME": str(tmp_path / "h"), "SHELL": ""},
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert marker in result.stdout
    assert "_TOKENCTL_COMPLETE" in result.stdout


def test_bash_itself_completes_with_the_shown_script(inventory):
    """The real bash: load the script `--show-completion` prints, then press Tab."""
    script = (
        'eval "$(tokenctl --show-completion)"\n'
        "COMP_WORDS=(tokenctl enable acme-x); COMP_CWORD=2\n"
        "_tokenctl_completion tokenctl\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    result = subprocess.run(
        ["bash", "--norc", "-c", script],
        capture_output=True,
        text=True,
        env={"PATH": f"{BIN}:/usr/bin:/bin", "TOKENCTL_HOME": str(inventory)},
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "acme-xero\n"


def test_install_completion_for_bash(tmp_path):
    home = tmp_path / "user"
    home.mkdir()
    result = subprocess.run(
        ["bash", "-c", f"{BIN}/tokenctl --install-completion; true"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(home), "TOKENCTL_HOME": str(tmp_path / "h")},
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    installed = home / ".bash_completions" / "tokenctl.sh"
    assert "_TOKENCTL_COMPLETE=complete_bash" in installed.read_text()
    assert f"source '{installed}'" in (home / ".bashrc").read_text()


def test_plain_token_fast_path_is_not_taken_for_a_completion(inventory):
    # `token REF` has a fast path that skips Typer; a completion request must not take it.
    env = {**os.environ, "TOKENCTL_HOME": str(inventory), **_shell_env("bash", "tokenctl sh")}
    result = subprocess.run(
        [sys.executable, "-m", "tokenctl", "token", "acme-exact"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["show"]
