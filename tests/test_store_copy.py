"""`tokenctl store copy` between the local store (real Secret Service keyring) and the team
store (a real OpenBao dev server), through real `tokenctl` processes: numbers, codes, log
information, history and secrets kept; idempotent; --dry-run writes nothing; conflicts."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.peers.openbao import OpenBao
from tests.proc import Proc, tokenctl

PATH = "acme"
BOOKS = (
    '[definitions.books]\ntitle = "Books"\nkind = "oauth2"\n[definitions.books.oauth2]\n'
    'authorization_endpoint = "https://books.example/a"\n'
    'token_endpoint = "https://books.example/t"\n'
)


class Home:
    """One tokenctl home: its config.toml names the team store; ``kind`` says which is used."""

    def __init__(
        self, tmp: Path, name: str, bao: OpenBao, mount: str, env: dict[str, str], kind: str
    ) -> None:
        self.home = tmp / name / "tokenctl"
        self.home.mkdir(parents=True)
        self.home.chmod(0o700)
        self.config = self.home / "config.toml"
        self.config.write_text(
            f'unit = "{name}"\n\n[store]\nkind = "{kind}"\naddress = "{bao.address}"\n'
            f'mount = "{mount}"\npath = "{PATH}"\n',
            encoding="utf-8",
        )
        self.config.chmod(0o600)
        (self.home / "definitions.toml").write_text(BOOKS, encoding="utf-8")
        self.env = {**env, "HOME": str(tmp / name)}

    def __call__(self, *args: str, input: str | None = None) -> Proc:
        return tokenctl(*args, home=self.home, env=self.env, input=input)

    def ok(self, *args: str, input: str | None = None) -> Proc:
        done = self(*args, input=input)
        assert done.exit_code == 0, (args, done.stderr)
        return done

    def show(self, ref: str) -> dict[str, Any]:
        """`show --json` without the secret section, which names each store's own key."""
        shown = self.ok("show", ref, "--json").json()["token"]
        shown.pop("secret")
        return dict(shown)


@pytest.fixture
def homes(tmp_path, openbao, openbao_kv, real_keyring) -> Callable[[str, str], Home]:  # type: ignore[no-untyped-def]
    base = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("BAO_", "VAULT_", "TOKENCTL_"))
    }
    env = {**real_keyring.child_env(base), "BAO_TOKEN": openbao.root_token}

    def home(name: str, kind: str = "local") -> Home:
        return Home(tmp_path, name, openbao, openbao_kv, env, kind)

    return home


@pytest.fixture
def team_inventory(openbao, openbao_kv) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    """The team inventory read directly (not through tokenctl's commands)."""
    from tokenctl.store.openbao.inventory import OpenBaoInventory

    inventory = OpenBaoInventory(openbao.address, openbao.root_token, openbao_kv, PATH)
    try:
        yield inventory
    finally:
        inventory.close()


def _copy(home: Home, *args: str) -> Proc:
    return home("store", "copy", *args, "--json")


def _actions(done: Proc) -> dict[str, str]:
    report = done.json()["store_copy"]
    found = {t["name"]: t["action"] for t in report["tokens"]}
    found.update(
        {f"{c['definition']}/{c['client_id']}": c["action"] for c in report["client_secrets"]}
    )
    return found


def _local_inventory(laptop: Home) -> dict[str, Any]:
    """What the local store holds, read with tokenctl's own commands."""
    listed = laptop.ok("list", "--json").json()["tokens"]
    return {t["name"]: laptop.show(t["name"]) for t in listed}


def _without_identity(shown: dict[str, Any]) -> dict[str, Any]:
    """``show`` documents without the store identity, which only the team store records."""
    plain = {}
    for name, token in shown.items():
        log = {k: v for k, v in token["log"].items() if not k.endswith("_identity")}
        history = [{k: v for k, v in e.items() if k != "identity"} for e in token["history"]]
        plain[name] = {**token, "log": log, "history": history}
    return plain


def _fill_laptop(laptop: Home) -> None:
    laptop.ok("add", "alpha", "--definition", "api-key", "--code", "ALPHA-1", "--secret-stdin",
              "--expires-in", "30d", "--description", "books of acme", input="p1")  # fmt: skip
    laptop.ok("add", "beta", "--definition", "api-key", "--secret-stdin", input="b")
    laptop.ok("add", "gamma", "--definition", "api-key", "--secret-stdin", input="g")
    laptop.ok("delete", "beta", "--yes")  # number 2 is gone: gamma stays 3
    laptop.ok("renew", "alpha", "--secret-stdin", input="p2")
    laptop.ok("disable", "gamma")
    laptop.ok(
        "definitions", "configure", "books", "--client-id", "app", "--client-secret-stdin",
        input="client-s3cret",
    )  # fmt: skip


def test_local_to_team_store_keeps_numbers_codes_log_history_and_secrets(homes, team_inventory):
    laptop = homes("laptop")
    _fill_laptop(laptop)
    before = _local_inventory(laptop)

    dry = _copy(laptop, "--from", "local", "--to", "openbao", "--dry-run")
    assert dry.exit_code == 0, dry.stderr
    assert _actions(dry) == {"alpha": "add", "gamma": "add", "books/app": "add"}
    assert dry.json()["store_copy"]["written"] is False
    assert "nothing written" in dry.stderr
    # Nothing written anywhere: the team store is empty, the local store as it was.
    assert team_inventory.tokens() == []
    assert team_inventory.client_secret("books", "app") is None
    assert team_inventory.history(1) == []
    assert _local_inventory(laptop) == before

    copied = _copy(laptop, "--from", "local", "--to", "openbao")
    assert copied.exit_code == 0, copied.stderr
    assert _actions(copied) == {"alpha": "add", "gamma": "add", "books/app": "add"}
    report = copied.json()["store_copy"]
    assert (report["from"], report["to"], report["written"], report["changes"]) == (
        "local", "openbao", True, 3,
    )  # fmt: skip
    assert "config.toml still chooses the local store" in copied.stderr
    assert "`tokenctl store use openbao`" in copied.stderr

    # Another machine on the team store sees the same tokens: numbers, codes, every
    # field, the log information (user, unit "laptop", times) and the whole history.
    cron = homes("cron", kind="openbao")
    assert _local_inventory(cron) == before
    assert cron.show("alpha")["number"] == 1 and cron.show("ALPHA-1")["name"] == "alpha"
    assert cron.show("3")["name"] == "gamma"
    assert cron.show("alpha")["log"]["created_unit"] == "laptop"
    events = ["renewed", "secret set", "created"]
    assert [e["event"] for e in cron.show("alpha")["history"]] == events
    assert cron.ok("token", "alpha").stdout == "p2\n"
    assert team_inventory.secrets(3).pass_code == "g"
    assert team_inventory.client_secret("books", "app") == "client-s3cret"
    assert team_inventory.history(2) == []  # a deleted token's history stays behind
    # The counter was raised past the numbers copied: a new token never reuses one.
    added = cron.ok(
        "add", "delta", "--definition", "api-key", "--secret-stdin", "--json", input="d"
    )
    assert added.json()["token"]["number"] == 4

    # A second run changes nothing, and says so.
    again = _copy(laptop, "--from", "local", "--to", "openbao")
    assert again.exit_code == 0, again.stderr
    assert _actions(again) == {"alpha": "same", "gamma": "same", "books/app": "same"}
    assert again.json()["store_copy"]["changes"] == 0
    assert "Nothing to copy" in again.stderr
    assert [e.event for e in team_inventory.history(1)] == events


def test_team_store_to_local_keeps_everything(homes, team_inventory):
    laptop = homes("laptop", kind="openbao")
    laptop.ok("add", "alpha", "--definition", "api-key", "--secret-stdin", input="t1")
    laptop.ok("add", "beta", "--definition", "api-key", "--code", "BETA-2", "--secret-stdin",
              input="t2")  # fmt: skip
    laptop.ok("renew", "beta", "--secret-stdin", "--expires-in", "2d", input="t3")
    team = _local_inventory(laptop)

    desk = homes("desk")  # a profile on the local store, the team store named in [store]
    dry = _copy(desk, "--from", "openbao", "--to", "local", "--dry-run")
    assert dry.exit_code == 0, dry.stderr
    assert _actions(dry) == {"alpha": "add", "beta": "add"}
    assert not (desk.home / "inventory.sqlite3").exists()  # not even an empty one
    copied = _copy(desk, "--from", "openbao", "--to", "local")
    assert copied.exit_code == 0, copied.stderr
    assert _actions(copied) == {"alpha": "add", "beta": "add"}
    assert "config.toml still chooses" not in copied.stderr
    # Everything but the store identity, which the local store does not record.
    assert team["alpha"]["log"]["created_identity"]  # the team store named who
    assert _without_identity(_local_inventory(desk)) == _without_identity(team)
    assert desk.ok("token", "beta").stdout == "t3\n"
    assert desk.ok("token", "1").stdout == "t1\n"
    assert desk.show("BETA-2")["log"]["created_unit"] == "laptop"
    assert desk.ok("add", "gamma", "--definition", "api-key", "--secret-stdin", "--json",
                   input="x").json()["token"]["number"] == 3  # fmt: skip
    again = _copy(desk, "--from", "openbao", "--to", "local")
    assert again.exit_code == 0, again.stderr
    assert _actions(again) == {"alpha": "same", "beta": "same"}
    # The team store was only read.
    assert _local_inventory(laptop) == team
    assert [t.name for t in team_inventory.tokens()] == ["alpha", "beta"]


def test_a_token_that_differs_is_refused_unless_overwrite(homes, team_inventory):
    laptop, cron = homes("laptop"), homes("cron", kind="openbao")
    laptop.ok("add", "alpha", "--definition", "api-key", "--secret-stdin", input="local-1")
    laptop.ok("add", "beta", "--definition", "api-key", "--secret-stdin", input="b")
    assert _copy(laptop, "--from", "local", "--to", "openbao").exit_code == 0
    cron.ok("renew", "alpha", "--secret-stdin", input="team-2")  # changed on the team store
    team_alpha = cron.show("alpha")

    refused = _copy(laptop, "--from", "local", "--to", "openbao")
    assert refused.exit_code == 1, refused.stderr
    assert refused.stdout == ""
    assert "nothing copied" in refused.stderr and "#1 'alpha' (differs" in refused.stderr
    assert "--overwrite" in refused.stderr
    assert cron.ok("token", "alpha").stdout == "team-2\n"  # nothing was written
    assert cron.show("alpha") == team_alpha

    dry = _copy(laptop, "--from", "local", "--to", "openbao", "--dry-run")
    assert dry.exit_code == 1, dry.stderr
    tokens = {t["name"]: t for t in dry.json()["store_copy"]["tokens"]}
    assert tokens["beta"]["action"] == "same"
    assert tokens["alpha"]["action"] == "differs"
    assert {"secret_set_at", "updated_at", "secrets", "history"} <= set(
        tokens["alpha"]["differences"]
    )
    assert "would be refused" in dry.stderr
    assert cron.ok("token", "alpha").stdout == "team-2\n"

    replaced = _copy(laptop, "--from", "local", "--to", "openbao", "--overwrite")
    assert replaced.exit_code == 0, replaced.stderr
    assert _actions(replaced) == {"alpha": "replace", "beta": "same"}
    assert cron.ok("token", "alpha").stdout == "local-1\n"
    assert cron.show("alpha") == laptop.show("alpha")
    assert [e.event for e in team_inventory.history(1)] == ["secret set", "created"]
    assert _actions(_copy(laptop, "--from", "local", "--to", "openbao")) == {
        "alpha": "same",
        "beta": "same",
    }


def test_a_name_another_token_holds_is_a_clash_even_with_overwrite(homes):
    laptop, cron = homes("laptop"), homes("cron", kind="openbao")
    cron.ok("add", "other", "--definition", "api-key", "--secret-stdin", input="o")
    laptop.ok("add", "first", "--definition", "api-key", "--secret-stdin", input="f")
    laptop.ok("add", "other", "--definition", "api-key", "--secret-stdin", input="l")
    for extra in ((), ("--overwrite",)):
        refused = _copy(laptop, "--from", "local", "--to", "openbao", *extra)
        assert refused.exit_code == 1, refused.stderr
        assert "#2 'other' (clash: its name 'other' is the name of token #1 there)" in (
            refused.stderr
        )
        assert "rename or delete one of the two" in refused.stderr
    # #1 of the team store is another token (another code), never a version of `first`.
    dry = _copy(laptop, "--from", "local", "--to", "openbao", "--dry-run")
    assert _actions(dry) == {"first": "clash", "other": "clash"}
    first = {t["name"]: t for t in dry.json()["store_copy"]["tokens"]}["first"]
    assert first["detail"] == "its number #1 is another token there, 'other'"
    assert [t["name"] for t in cron.ok("list", "--json").json()["tokens"]] == ["other"]


def test_a_copy_cut_short_is_finished_by_the_next_run(homes, team_inventory, monkeypatch):
    from tokenctl.inventory.sqlite import SqliteInventory
    from tokenctl.secrets.keyring_store import OsKeyring
    from tokenctl.store.openbao.inventory import OpenBaoInventory

    laptop, cron = homes("laptop"), homes("cron", kind="openbao")
    laptop.ok("add", "alpha", "--definition", "api-key", "--secret-stdin", input="a")
    assert _copy(laptop, "--from", "local", "--to", "openbao").exit_code == 0
    laptop.ok("add", "beta", "--definition", "api-key", "--secret-stdin", input="b")
    laptop.ok("renew", "beta", "--secret-stdin", input="b2")
    shown = laptop.show("beta")
    # A copy killed just before beta's record was written: its name, code, secret and
    # history are on the team store, its record is not (and nothing was cleaned up).
    local = SqliteInventory(laptop.home / "inventory.sqlite3", lambda: OsKeyring())
    try:
        beta, secrets, history = local.get(2), local.secrets(2), local.history(2)
    finally:
        local.close()

    def killed(*_args: Any, **_kwargs: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(OpenBaoInventory, "_write_page", killed)
    monkeypatch.setattr(OpenBaoInventory, "_release", lambda *_args: None)
    with pytest.raises(KeyboardInterrupt):
        team_inventory.import_token(beta, secrets, history)
    monkeypatch.undo()
    assert [t.name for t in team_inventory.tokens()] == ["alpha"]
    assert len(team_inventory.history(2)) == 3
    assert cron("token", "beta").exit_code == 3

    finished = _copy(laptop, "--from", "local", "--to", "openbao")
    assert finished.exit_code == 0, finished.stderr
    assert _actions(finished) == {"alpha": "same", "beta": "add"}
    assert cron.show("beta") == shown
    assert cron.ok("token", "beta").stdout == "b2\n"
    assert _actions(_copy(laptop, "--from", "local", "--to", "openbao")) == {
        "alpha": "same",
        "beta": "same",
    }


def test_bad_input_is_refused_clearly(homes, tmp_path):
    laptop = homes("laptop")
    same = laptop("store", "copy", "--from", "local", "--to", "local")
    assert same.exit_code == 2
    assert "--from and --to both name the local store" in same.stderr
    unknown = laptop("store", "copy", "--from", "sqlite", "--to", "openbao")
    assert unknown.exit_code == 2
    assert "unknown store 'sqlite'" in unknown.stderr
    assert "use --from local or --from openbao" in unknown.stderr
    missing = laptop("store", "copy", "--from", "local")
    assert missing.exit_code == 2 and "--to" in missing.stderr
    laptop.config.write_text('unit = "laptop"\n', encoding="utf-8")
    unconfigured = laptop("store", "copy", "--from", "local", "--to", "openbao")
    assert unconfigured.exit_code == 1
    assert "no team store is configured" in unconfigured.stderr
    assert "Traceback" not in unconfigured.stderr


def test_a_long_history_is_imported_in_chunks_and_replaced_whole(openbao, openbao_kv):
    from datetime import UTC, datetime, timedelta

    from tokenctl.models import Actor, HistoryEvent, Token, TokenSecrets
    from tokenctl.store.openbao.inventory import OpenBaoInventory
    from tokenctl.store.openbao.layout import HISTORY_CHUNK

    start = datetime(2026, 1, 1, tzinfo=UTC)
    count = 3 * HISTORY_CHUNK + 50  # two archived chunks and the newest events
    events = [
        HistoryEvent(9000 + i, 7, "long", start + timedelta(minutes=i), f"e{i}", "u", "x", "ok")
        for i in reversed(range(count))
    ]  # newest first, with ids of another store
    token = Token(number=7, name="long", authentication_code="LONG-7", definition="api-key")
    team = OpenBaoInventory(openbao.address, openbao.root_token, openbao_kv, "chunks")
    try:
        team.import_token(token, TokenSecrets(pass_code="p"), events)
        stored = team.history(7)
        assert [e.event for e in stored] == [e.event for e in events]
        assert [e.event_id for e in stored] == list(range(count, 0, -1))
        assert team.history(7, limit=3)[0].event == f"e{count - 1}"
        archived = sorted(k for k in team.kv.keys("chunks/history/7") if k.isdigit())
        assert archived == ["1", str(HISTORY_CHUNK + 1)]
        # An event appended afterwards continues the numbering.
        team.record_event(token, Actor("v", "y"), start, event="probed", outcome="ok")
        assert team.history(7, limit=1)[0].event_id == count + 1
        # Replaced by a short history: the archived chunks of the long one are gone.
        team.import_token(token, None, events[-2:], replace=True)
        assert [e.event for e in team.history(7)] == ["e1", "e0"]
        assert [k for k in team.kv.keys("chunks/history/7") if k.isdigit()] == []
        assert team.secrets(7) is None
        # The counter was raised past the number: the next add is 8.
        added = team.add(
            Token(number=0, name="next", authentication_code="NEXT-8", definition="api-key"),
            Actor("u", "x"),
            start,
        )
        assert added.number == 8
    finally:
        team.close()


def test_on_a_terminal_the_copy_is_a_table(tmp_path, openbao, openbao_kv):
    from tests.fakes import Cli

    cli = Cli(home=tmp_path / "home", environ={"BAO_TOKEN": openbao.root_token})
    cli.home.mkdir()
    (cli.home / "config.toml").write_text(
        f'[store]\naddress = "{openbao.address}"\nmount = "{openbao_kv}"\npath = "tty"\n',
        encoding="utf-8",
    )
    empty = cli("store", "copy", "--from", "local", "--to", "openbao")
    assert empty.exit_code == 3 and "does not exist: nothing to copy" in empty.stderr
    assert not (cli.home / "inventory.sqlite3").exists()
    assert cli("add", "acme", "--definition", "api-key", "--secret-stdin", input="p").exit_code == 0
    done = cli("store", "copy", "--from", "local", "--to", "openbao", tty=True)
    assert done.exit_code == 0, done.stderr
    header, row = done.stdout.splitlines()[:2]
    assert header.split() == ["#", "Name", "Action", "Detail"]
    assert row.split() == ["1", "acme", "add"]
    assert "Copied from" in done.stderr
    back = cli("store", "copy", "--from", "openbao", "--to", "local", "--json")
    assert back.exit_code == 0, back.stderr
    assert [t["action"] for t in back.json()["store_copy"]["tokens"]] == ["same"]
