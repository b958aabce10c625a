"""Legacy keyring entries no record points to: ``doctor`` finds and removes them when asked.

tokenctl 0.x wrote a token's keyring entry before its record: an ``add`` killed in
between left an entry with a live grant that no other command can see. Secrets are now
sealed in the inventory in the record's own transaction, so a killed ``add`` leaves
nothing (tested here too), but the old orphans may still be in users' keyrings.
"""

from __future__ import annotations

import pytest

from tests.fakes import Cli, MemoryKeyring, sealed_rows
from tests.oauth_support import RealClock, ScriptedBrowser, configure, introspect
from tests.proc import tokenctl
from tokenctl.models import TokenSecrets
from tokenctl.secrets.keyring_store import OsKeyring


class Killed(BaseException):
    """Stands for SIGKILL: no handler of tokenctl's runs, nothing is cleaned up."""


def _orphan_line(stdout: str) -> str:
    lines = [line for line in stdout.splitlines() if line[5:].startswith("orphans ")]
    assert len(lines) == 1, stdout
    return lines[0]


def test_a_killed_add_leaves_neither_record_nor_secret(cli, monkeypatch):
    from tokenctl.inventory.sealed import SealedSecrets

    real_write = SealedSecrets.write_token

    def killed_after_sealing(self, connection, number, secrets):  # type: ignore[no-untyped-def]
        real_write(self, connection, number, secrets)  # sealed, in the open transaction
        raise Killed

    with monkeypatch.context() as patch, pytest.raises(Killed):
        patch.setattr(SealedSecrets, "write_token", killed_after_sealing)
        cli("add", "acme", "--definition", "api-key", "--secret-stdin", input="p")
    assert cli("list", "--json").json()["tokens"] == []
    assert sealed_rows(cli.home) == []
    added = cli("add", "acme", "--definition", "api-key", "--secret-stdin", input="p")
    assert added.exit_code == 0, added.stderr
    assert cli("token", "acme").stdout == "p\n"


@pytest.mark.peers
def test_doctor_finds_and_revokes_the_grant_of_a_legacy_orphan(tmp_path, oidc, real_keyring):
    home = tmp_path / "home"
    store = OsKeyring()
    cli = Cli(home=home, clock=RealClock(), keyring=store)  # type: ignore[arg-type]
    name = configure(cli, tmp_path, oidc)
    cli.browser = ScriptedBrowser(oidc)
    assert cli("add", "acme", "--definition", name, "--yes").exit_code == 0
    grant = cli.stored("acme")
    attributes = cli("show", "acme", "--json").json()["token"]["attributes"]
    assert cli("delete", "acme", "--yes", "--no-revoke").exit_code == 0
    assert grant is not None and grant.refresh_token
    # What a killed `add` of tokenctl 0.x left: the entry, with the facts it wrote.
    ref = "token-" + "ab" * 16
    orphan = TokenSecrets(
        access_token=grant.access_token,
        refresh_token=grant.refresh_token,
        definition=name,
        attributes=attributes,
        inventory=str((home / "inventory.sqlite3").resolve()),
    )
    store.set_text(ref, orphan.to_json())
    assert introspect(oidc, grant.refresh_token)["active"] is True
    env = real_keyring.child_env()
    assert tokenctl("list", home=home, env=env).stdout == ""  # no command can see it

    found = tokenctl("doctor", home=home, env=env)
    assert found.exit_code == 1, found.stdout
    line = _orphan_line(found.stdout)
    assert line.startswith("FAIL") and ref in line and "tokenctl doctor --remove-orphans" in line
    assert introspect(oidc, grant.refresh_token)["active"] is True  # nothing done unasked

    removed = tokenctl("doctor", "--remove-orphans", home=home, env=env)
    assert removed.exit_code == 0, removed.stdout
    line = _orphan_line(removed.stdout)
    assert line.startswith("ok") and f"{ref}: removed and its grant revoked" in line
    assert store.get_text(ref) is None
    assert introspect(oidc, grant.refresh_token)["active"] is False
    assert grant.refresh_token not in removed.stdout + removed.stderr
    again = tokenctl("doctor", home=home, env=env)
    assert again.exit_code == 0
    assert _orphan_line(again.stdout).startswith("ok   orphans      none (")


@pytest.mark.peers
def test_entries_of_an_older_tokenctl_or_another_home_are_left_alone(tmp_path, real_keyring):
    """Every home shares the keyring service: what this home did not write is not its own."""
    home = tmp_path / "home"
    env = real_keyring.child_env()
    store = OsKeyring()
    in_use = Cli(home=home, keyring=store)  # type: ignore[arg-type]
    assert (
        in_use("add", "kept", "--definition", "api-key", "--secret-stdin", input="p").exit_code == 0
    )

    def legacy(ref: str, **values: str) -> None:
        store.set_text(ref, TokenSecrets(**values).to_json())  # type: ignore[arg-type]

    legacy("token-0123456789abcdef", refresh_token="old-format")
    legacy("definition-gone-client-x", client_secret="s")
    elsewhere = str((tmp_path / "other" / "inventory.sqlite3").resolve())
    legacy("token-fedcba9876543210", pass_code="x", inventory=elsewhere)
    ours = str((home / "inventory.sqlite3").resolve())
    legacy("definition-gone-client-y", client_secret="s", inventory=ours)
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
    shared = MemoryKeyring()
    first = Cli(home=tmp_path / "a", keyring=shared)
    second = Cli(home=tmp_path / "b", keyring=shared)
    assert (
        first("add", "prod-key", "--definition", "api-key", "--secret-stdin", input="p").exit_code
        == 0
    )
    doctor = second("doctor", "--remove-orphans")
    assert doctor.exit_code == 0, doctor.stdout
    # The other home's data key is never a candidate: which homes use it is unknowable.
    assert "none (1 keyring entries)" in doctor.stdout
    assert first("token", "prod-key").stdout == "p\n"


def test_on_a_terminal_doctor_asks_before_removing(cli):
    inventory = str((cli.home / "inventory.sqlite3").resolve())
    cli.keyring.set_text(
        "token-feedface", TokenSecrets(pass_code="left", inventory=inventory).to_json()
    )
    declined = cli("doctor", tty=True, input="n\n")
    assert declined.exit_code == 1 and "token-feedface" in cli.keyring.entries
    assert "Revoke their grants where possible and remove them? [y/N]" in declined.stderr
    accepted = cli("doctor", tty=True, input="y\n")
    assert accepted.exit_code == 0, accepted.stdout
    assert "token-feedface" not in cli.keyring.entries


class UnlistableStore(MemoryKeyring):
    def entry_names(self) -> list[str] | None:
        return None


def test_a_backend_that_cannot_list_entries_is_said_so(tmp_path):
    cli = Cli(home=tmp_path / "home", keyring=UnlistableStore())
    result = cli("doctor", "--json")
    assert result.exit_code == 0, result.stdout
    [check] = [c for c in result.json()["doctor"]["checks"] if c["name"] == "orphans"]
    assert check["ok"] is True and "cannot list its entries" in check["detail"]
