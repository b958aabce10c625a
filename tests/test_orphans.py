"""Keyring entries no record points to: ``doctor`` finds them and removes them when asked.

An ``add`` killed between writing the keyring and writing the record leaves an entry with
a live grant that no other command can see.
"""

from __future__ import annotations

import pytest

from tests.fakes import Cli, MemorySecretStore
from tests.oauth_support import RealClock, ScriptedBrowser, configure, introspect
from tests.proc import tokenctl
from tokenctl.inventory.sqlite import SqliteInventory
from tokenctl.models import TokenSecrets
from tokenctl.secrets.keyring_store import KeyringSecretStore


class Killed(BaseException):
    """Stands for SIGKILL: no handler of tokenctl's runs, nothing is cleaned up."""


def _orphan_line(stdout: str) -> str:
    lines = [line for line in stdout.splitlines() if line[5:].startswith("orphans ")]
    assert len(lines) == 1, stdout
    return lines[0]


@pytest.mark.peers
def test_doctor_finds_and_revokes_the_secret_of_a_killed_add(
    tmp_path, oidc, real_keyring, monkeypatch
):
    home = tmp_path / "home"
    store = KeyringSecretStore()
    cli = Cli(home=home, clock=RealClock(), secrets=store)  # type: ignore[arg-type]
    name = configure(cli, tmp_path, oidc)
    written: list[str] = []

    def killed_before_the_record(self, token, actor, now):  # type: ignore[no-untyped-def]
        written.append(token.secret_ref)
        assert store.get_text(token.secret_ref) is not None  # the keyring write happened
        raise Killed

    cli.browser = ScriptedBrowser(oidc)
    with monkeypatch.context() as patch, pytest.raises(Killed):
        patch.setattr(SqliteInventory, "add", killed_before_the_record)
        cli("add", "acme", "--definition", name, "--yes")
    [ref] = written
    orphan = store.get(ref)
    assert orphan is not None and orphan.refresh_token and orphan.definition == name
    assert introspect(oidc, orphan.refresh_token)["active"] is True
    env = real_keyring.child_env()
    assert tokenctl("list", home=home, env=env).stdout == ""  # no command can see it

    found = tokenctl("doctor", home=home, env=env)
    assert found.exit_code == 1, found.stdout
    line = _orphan_line(found.stdout)
    assert line.startswith("FAIL") and ref in line and "tokenctl doctor --remove-orphans" in line
    assert introspect(oidc, orphan.refresh_token)["active"] is True  # nothing done unasked

    removed = tokenctl("doctor", "--remove-orphans", home=home, env=env)
    assert removed.exit_code == 0, removed.stdout
    line = _orphan_line(removed.stdout)
    assert line.startswith("ok") and f"{ref}: removed and its grant revoked" in line
    assert store.get_text(ref) is None
    assert introspect(oidc, orphan.refresh_token)["active"] is False
    assert orphan.refresh_token not in removed.stdout + removed.stderr
    again = tokenctl("doctor", home=home, env=env)
    assert again.exit_code == 0
    assert _orphan_line(again.stdout).startswith("ok   orphans      none (")


@pytest.mark.peers
def test_entries_of_an_older_tokenctl_or_another_home_are_left_alone(tmp_path, real_keyring):
    """Every home shares the keyring service: what this home did not write is not its own."""
    home = tmp_path / "home"
    env = real_keyring.child_env()
    store = KeyringSecretStore()
    in_use = Cli(home=home, secrets=store)  # type: ignore[arg-type]
    assert (
        in_use("add", "kept", "--definition", "api-key", "--secret-stdin", input="p").exit_code == 0
    )
    store.set("token-0123456789abcdef", TokenSecrets(refresh_token="old-format"))
    store.set("definition-gone-client-x", TokenSecrets(client_secret="s"))
    elsewhere = str((tmp_path / "other" / "inventory.sqlite3").resolve())
    store.set("token-fedcba9876543210", TokenSecrets(pass_code="x", inventory=elsewhere))
    ours = str((home / "inventory.sqlite3").resolve())
    store.set("definition-gone-client-y", TokenSecrets(client_secret="s", inventory=ours))
    removed = tokenctl("doctor", "--remove-orphans", home=home, env=env)
    assert removed.exit_code == 0, removed.stdout
    line = _orphan_line(removed.stdout)
    assert "definition-gone-client-y: removed (a client secret" in line
    assert "3 entries written for another tokenctl home (or by an older tokenctl)" in line
    assert store.get_text("definition-gone-client-y") is None
    for left in ("token-0123456789abcdef", "definition-gone-client-x", "token-fedcba9876543210"):
        assert store.get_text(left) is not None, left
    assert tokenctl("token", "kept", home=home, env=env).stdout == "p\n"  # in use: kept


def test_doctor_in_one_home_never_removes_another_homes_tokens(tmp_path):
    shared = MemorySecretStore()
    first = Cli(home=tmp_path / "a", secrets=shared)
    second = Cli(home=tmp_path / "b", secrets=shared)
    assert (
        first("add", "prod-key", "--definition", "api-key", "--secret-stdin", input="p").exit_code
        == 0
    )
    doctor = second("doctor", "--remove-orphans")
    assert doctor.exit_code == 0, doctor.stdout
    assert "1 entry written for another tokenctl home" in doctor.stdout
    assert first("token", "prod-key").stdout == "p\n"


def test_on_a_terminal_doctor_asks_before_removing(cli):
    inventory = str((cli.home / "inventory.sqlite3").resolve())
    cli.secrets.set("token-feedface", TokenSecrets(pass_code="left", inventory=inventory))
    declined = cli("doctor", tty=True, input="n\n")
    assert declined.exit_code == 1 and "token-feedface" in cli.secrets.entries
    assert "Revoke their grants where possible and remove them? [y/N]" in declined.stderr
    accepted = cli("doctor", tty=True, input="y\n")
    assert accepted.exit_code == 0, accepted.stdout
    assert "token-feedface" not in cli.secrets.entries


class UnlistableStore(MemorySecretStore):
    def entry_names(self) -> list[str] | None:
        return None


def test_a_backend_that_cannot_list_entries_is_said_so(tmp_path):
    cli = Cli(home=tmp_path / "home", secrets=UnlistableStore())
    result = cli("doctor", "--json")
    assert result.exit_code == 0, result.stdout
    [check] = [c for c in result.json()["doctor"]["checks"] if c["name"] == "orphans"]
    assert check["ok"] is True and "cannot list its entries" in check["detail"]
