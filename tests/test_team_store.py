"""The team store (OpenBao KV v2) against a real `bao server -dev`: the Inventory protocol,
numbers, clashes, several machines at once, policies, failures, and commands on top."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import fields, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.fakes import START, Cli, MemoryKeyring
from tests.peers.openbao import OpenBao, free_ports, start_dev_server
from tokenctl.errors import (
    ConflictError,
    ExitCode,
    InventoryError,
    NotFoundError,
    SecretStoreError,
    UsageError,
)
from tokenctl.inventory.sqlite import SqliteInventory
from tokenctl.models import Actor, LifecycleState, Token, TokenSecrets
from tokenctl.store.openbao import openbao_inventory_factory
from tokenctl.store.openbao.inventory import OpenBaoInventory
from tokenctl.store.openbao.layout import HISTORY_CHUNK, PAGE_SIZE, Layout

pytestmark = pytest.mark.peers

MOUNT = "tokenctl"
ACTOR = Actor("tester", "testhost")


# -- the server: the session's real OpenBao (tests/peers/openbao.py) --------------------


@pytest.fixture(scope="module")
def bao(openbao: OpenBao) -> OpenBao:
    """The session's dev server, with the KV v2 mount MOUNT these tests share."""
    if f"{MOUNT}/" not in openbao.client().sys.list_mounted_secrets_engines()["data"]:
        openbao.enable_kv(MOUNT)
    return openbao


@pytest.fixture
def prefix() -> str:
    """A team inventory of this test's own."""
    return f"team-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def open_team(bao: OpenBao, prefix: str) -> Iterator[Callable[..., OpenBaoInventory]]:
    """Opens the test's team inventory, as another machine would: its own connection."""
    opened: list[OpenBaoInventory] = []

    def open_inventory(token: str | None = None, **options: Any) -> OpenBaoInventory:
        inventory = OpenBaoInventory(bao.address, token or bao.root_token, MOUNT, prefix, **options)
        opened.append(inventory)
        return inventory

    yield open_inventory
    for inventory in opened:
        inventory.close()


@pytest.fixture
def team(open_team: Callable[..., OpenBaoInventory]) -> OpenBaoInventory:
    return open_team()


def draft(name: str, code: str | None = None, **values: Any) -> Token:
    return Token(
        number=0,
        name=name,
        authentication_code=code or f"CODE-{name}",
        definition=values.pop("definition", "api-key"),
        **values,
    )


# -- the protocol, one method at a time -------------------------------------------------


def test_add_numbers_stamps_and_returns_the_stored_record(team):
    now = START + timedelta(microseconds=123456)
    added = team.add(
        draft("acme", description="Acme books", expires_at=START + timedelta(days=30)),
        ACTOR,
        now,
        secrets=TokenSecrets(pass_code="p4ss"),
    )
    assert added.number == 1
    assert (added.created_at, added.updated_at) == (START, START)  # to the second, as stored
    assert (added.created_by, added.created_unit) == ("tester", "testhost")
    assert added == team.get(1) == team.resolve("1") == team.resolve("acme")
    assert team.resolve("CODE-acme") == added
    assert team.tokens() == [added]
    assert team.secrets(1) == TokenSecrets(pass_code="p4ss")
    assert [(e.event, e.user, e.unit, e.event_id) for e in team.history(1)] == [
        ("created", "tester", "testhost", 1)
    ]


def test_every_field_survives_the_round_trip(team):
    full = Token(
        number=0,
        name="full",
        authentication_code="FULL-1",
        definition="exact-online",
        description="d",
        identifier="i",
        account="a@example.com",
        state=LifecycleState.NOT_EFFECTIVE,
        expires_at=START + timedelta(hours=1),
        refresh_expires_at=START + timedelta(days=90),
        granted_scopes=("openid", "offline_access"),
        secret_set_at=START,
        invalid_at=START + timedelta(minutes=5),
        invalid_reason="refused",
        attributes={"tenant_id": "t-1", "subject": "s"},
        has_refresh_token=True,
        refreshed_at=START,
        probed_at=START,
        probe_result="valid",
        has_id_token=True,
    )
    added = team.add(full, ACTOR, START)
    expected = replace(
        full,
        number=added.number,
        created_at=START,
        created_by="tester",
        created_unit="testhost",
        updated_at=START,
        updated_by="tester",
        updated_unit="testhost",
    )
    assert team.get(added.number) == expected
    assert {item.name for item in fields(Token)} - {"legacy_secret_ref"} <= set(vars(expected))


def test_update_update_if_record_event_and_history(team):
    token = team.add(draft("acme"), ACTOR, START)
    later = START + timedelta(hours=1)
    other = Actor("support", "cron-host")
    updated = team.update(token.number, {"description": "new"}, other, later, event="edited")
    assert updated.description == "new" and updated.updated_by == "support"
    assert updated.updated_at == later and updated.created_at == START
    same, changed = team.update_if(token.number, lambda current: None, ACTOR, later, event="never")
    assert (same, changed) == (updated, False)
    flipped, changed = team.update_if(
        token.number,
        lambda current: {"state": LifecycleState.NOT_EFFECTIVE},
        ACTOR,
        later,
        event="state changed",
        detail="now not_effective",
    )
    assert changed and flipped.state is LifecycleState.NOT_EFFECTIVE
    team.record_event(flipped, ACTOR, later, event="probed", outcome="invalid", detail="401")
    history = team.history(token.number)
    assert [(e.event, e.outcome, e.detail) for e in history] == [
        ("probed", "invalid", "401"),
        ("state changed", "ok", "now not_effective"),
        ("edited", "ok", None),
        ("created", "ok", None),
    ]
    assert [e.event_id for e in history] == [4, 3, 2, 1]
    assert [e.event for e in team.history(token.number, 2)] == ["probed", "state changed"]
    assert team.history(token.number, 0) == []
    with pytest.raises(ValueError, match="cannot be changed"):
        team.update(token.number, {"number": 7}, ACTOR, later, event="x")  # type: ignore[typeddict-unknown-key]
    with pytest.raises(NotFoundError, match="token #99 no longer exists"):
        team.update(99, {"description": "x"}, ACTOR, later, event="x")


def test_update_with_secrets_replaces_them(team):
    token = team.add(draft("acme"), ACTOR, START, secrets=TokenSecrets(pass_code="old"))
    team.update(
        token.number,
        {"secret_set_at": START},
        ACTOR,
        START,
        event="renewed",
        secrets=TokenSecrets(access_token="at", refresh_token="rt", token_type="Bearer"),
    )
    assert team.secrets(token.number) == TokenSecrets(
        access_token="at", refresh_token="rt", token_type="Bearer"
    )
    # update_if stores the secrets only with changes
    team.update_if(
        token.number, lambda t: None, ACTOR, START, event="x", secrets=TokenSecrets(pass_code="no")
    )
    assert team.secrets(token.number).access_token == "at"


def test_secrets_are_kept_under_their_tokens_definition(team, bao, prefix):
    token = team.add(draft("acme", definition="exact-online-nl"), ACTOR, START)
    team.update(
        token.number, {}, ACTOR, START, event="renewed", secrets=TokenSecrets(access_token="at")
    )
    team.set_client_secret("exact-online-nl", "client/1", "s3cret")
    kv = bao.client().secrets.kv.v2
    assert kv.list_secrets(f"{prefix}/secrets", mount_point=MOUNT)["data"]["keys"] == [
        "exact-online-nl/"
    ]
    stored = kv.read_secret_version(
        f"{prefix}/secrets/exact-online-nl/{token.number}",
        mount_point=MOUNT,
        raise_on_deleted_version=True,
    )
    assert stored["data"]["data"]["access_token"] == "at"
    clients = kv.list_secrets(f"{prefix}/clients", mount_point=MOUNT)["data"]["keys"]
    assert clients == ["exact-online-nl/"]


def test_a_definition_that_is_no_path_segment_is_encoded():
    layout = Layout("p")
    assert layout.secrets("xero", 3) == "p/secrets/xero/3"
    assert layout.secrets("a/b", 3) == "p/secrets/~YS9i/3"
    assert layout.secrets("..", 3) == "p/secrets/~Li4/3"
    assert layout.client("Xero", "c") == "p/clients/~WGVybw/Yw"


@pytest.mark.parametrize("with_secrets", [False, True])
def test_a_change_of_definition_moves_the_secrets(open_team, bao, prefix, with_secrets):
    laptop, cron_host = open_team(), open_team()
    token = laptop.add(draft("acme"), ACTOR, START, secrets=TokenSecrets(pass_code="p"))
    assert cron_host.secrets(token.number) == TokenSecrets(pass_code="p")  # knows: api-key
    new = TokenSecrets(pass_code="new") if with_secrets else None
    laptop.update(token.number, {"definition": "xero"}, ACTOR, START, event="moved", secrets=new)
    kv = bao.client().secrets.kv.v2
    assert kv.list_secrets(f"{prefix}/secrets", mount_point=MOUNT)["data"]["keys"] == ["xero/"]
    wanted = new or TokenSecrets(pass_code="p")
    assert laptop.secrets(token.number) == wanted
    # The cron host last read the token under its old definition: it finds them anyway.
    assert cron_host.secrets(token.number) == wanted
    assert open_team().secrets(token.number) == wanted
    # And renews them where they are now.
    cron_host.update(
        token.number, {}, ACTOR, START, event="renewed", secrets=TokenSecrets(pass_code="r")
    )
    assert laptop.secrets(token.number) == TokenSecrets(pass_code="r")
    assert kv.list_secrets(f"{prefix}/secrets", mount_point=MOUNT)["data"]["keys"] == ["xero/"]
    assert cron_host.delete(token.number, ACTOR, START, detail=None) is True
    assert cron_host.kv.keys(f"{prefix}/secrets") == []  # none: the folder is gone


def test_delete_removes_record_secrets_and_keys_and_keeps_history(team):
    kept = team.add(draft("kept"), ACTOR, START)
    token = team.add(draft("acme"), ACTOR, START, secrets=TokenSecrets(pass_code="p"))
    assert team.delete(token.number, ACTOR, START, detail="secret removed") is True
    with pytest.raises(NotFoundError, match=f"token #{token.number} no longer exists"):
        team.get(token.number)
    for ref in ("acme", "CODE-acme", str(token.number)):
        with pytest.raises(NotFoundError, match=f"no token {ref!r}"):
            team.resolve(ref)
    assert team.secrets(token.number) is None
    assert [e.event for e in team.history(token.number)] == ["deleted", "created"]
    assert team.history(token.number)[0].detail == "secret removed"
    assert team.tokens() == [kept]
    assert team.delete(kept.number, ACTOR, START, detail=None) is False  # had no secrets
    with pytest.raises(NotFoundError):
        team.delete(kept.number, ACTOR, START, detail=None)
    again = team.add(draft("acme"), ACTOR, START)  # the name and code are free again
    assert again.number == token.number + 1


def test_names_using_definition_and_client_secrets(team):
    team.add(draft("a", definition="exact-online"), ACTOR, START)
    team.add(draft("b", definition="api-key"), ACTOR, START)
    team.add(draft("c", definition="exact-online"), ACTOR, START)
    assert list(team.names_using_definition("exact-online")) == ["a", "c"]
    assert list(team.names_using_definition("nothing")) == []
    assert team.client_secret("exact-online", "client/1") is None
    team.set_client_secret("exact-online", "client/1", "s3cret")
    team.set_client_secret("exact-online", "client-2", "other")
    assert team.client_secret("exact-online", "client/1") == "s3cret"
    team.set_client_secret("exact-online", "client/1", "replaced")
    assert team.client_secret("exact-online", "client/1") == "replaced"
    assert team.delete_client_secret("exact-online", "client/1") is True
    assert team.delete_client_secret("exact-online", "client/1") is False
    assert team.client_secret("exact-online", "client/1") is None
    assert team.client_secret("exact-online", "client-2") == "other"


def test_inventory_id_is_made_once_and_shared(open_team):
    first, second = open_team(), open_team()
    assert first.inventory_id == second.inventory_id
    assert len(first.inventory_id) == 32
    assert open_team().inventory_id == first.inventory_id


def test_key_commands_are_refused_with_what_applies(team):
    for call in (
        lambda: team.secret_summary(verify=True),
        team.rotate_key,
        lambda: team.reset_key(ACTOR, START),
    ):
        with pytest.raises(UsageError, match="OpenBao encrypts every secret") as raised:
            call()
        assert "bao operator rotate" in (raised.value.hint or "")


def test_integrity_and_describe(team, bao, prefix):
    assert team.check_integrity() == []
    for name in ("a", "b"):
        token = team.add(draft(name), ACTOR, START)
        team.record_event(token, ACTOR, START, event="probed", outcome="ok")
    facts = team.describe()
    assert (facts["tokens"], facts["history_events"], facts["schema_version"]) == (2, 4, 1)
    assert team.check_integrity() == []
    bao.client().secrets.kv.v2.delete_metadata_and_all_versions(
        Layout(prefix).name("b"), mount_point=MOUNT
    )
    assert team.check_integrity() == ["token #2 'b' has no name key: it is not found by its name"]


def test_a_full_page_and_a_long_history_stay_within_the_servers_json_limits(team):
    # OpenBao refuses a request body of more than 1,000 JSON strings: a page of 100
    # records, and a history of hundreds of events, are written whole.
    for i in range(PAGE_SIZE + 1):
        team.add(draft(f"t{i}", description="d", expires_at=START), ACTOR, START)
    assert [t.number for t in team.tokens()] == list(range(1, PAGE_SIZE + 2))
    assert team.update(PAGE_SIZE, {"account": "a@example.com"}, ACTOR, START, event="e").account
    token = team.get(1)
    events = 2 * HISTORY_CHUNK + 50
    for i in range(events):
        team.record_event(token, ACTOR, START, event="probed", outcome="ok", detail=f"{i}")
    history = team.history(1)
    assert [e.event_id for e in history] == list(range(events + 1, 0, -1))
    assert [e.detail for e in history[:2]] == [f"{events - 1}", f"{events - 2}"]
    assert history[-1].event == "created"
    assert [e.event_id for e in team.history(1, HISTORY_CHUNK + 10)] == list(
        range(events + 1, events + 1 - HISTORY_CHUNK - 10, -1)
    )
    assert team.describe()["history_events"] == events + PAGE_SIZE + 2
    current = team.kv.read(team.layout.history(1)).data
    assert len(current["events"]) <= 2 * HISTORY_CHUNK and current["archived"] == [1]


# -- numbers, names and codes -----------------------------------------------------------


def test_numbers_are_never_reused(team, open_team):
    numbers = [team.add(draft(f"t{i}"), ACTOR, START).number for i in range(3)]
    assert numbers == [1, 2, 3]
    team.delete(3, ACTOR, START, detail=None)
    with pytest.raises(ConflictError):
        team.add(draft("t0"), ACTOR, START)  # refused: its number (4) is skipped
    other_machine = open_team()  # reads the counter afresh; `team` tries the one it wrote
    numbers += [
        other_machine.add(draft("t3"), ACTOR, START).number,
        team.add(draft("t4"), ACTOR, START).number,  # its guess is stale: read again
        other_machine.add(draft("t5"), ACTOR, START).number,
    ]
    assert numbers == [1, 2, 3, 5, 6, 7]
    assert [t.number for t in team.tokens()] == [1, 2, 5, 6, 7]


CLASHES = [
    # (first token, second token, message)
    (("acme", "CODE-1"), ("acme", "CODE-2"), "a token named 'acme' already exists"),
    (("acme", "CODE-1"), ("other", "CODE-1"), "authentication code 'CODE-1' is already in use"),
    (
        ("acme", "CODE-1"),
        ("CODE-1", "CODE-2"),
        "name 'CODE-1' is the authentication code of token 'acme'",
    ),
    (
        ("acme", "CODE-1"),
        ("third", "acme"),
        "authentication code 'acme' is the name of another token",
    ),
]


@pytest.mark.parametrize(("first", "second", "message"), CLASHES)
def test_clashes_are_refused_as_the_local_store_refuses_them(
    team, tmp_path, first, second, message
):
    local = SqliteInventory(tmp_path / "inventory.sqlite3", lambda: MemoryKeyring())
    try:
        for inventory in (local, team):
            inventory.add(draft(*first), ACTOR, START)
            with pytest.raises(ConflictError) as refused:
                inventory.add(draft(*second), ACTOR, START, secrets=TokenSecrets(pass_code="x"))
            assert refused.value.message == message
            assert [t.name for t in inventory.tokens()] == [first[0]]
    finally:
        local.close()
    # The refused add gave back what it claimed: the part that did not clash is free.
    name, code = second
    if name not in first:
        assert team.add(draft(name, "FREE-1"), ACTOR, START).name == name
    if code not in first:
        assert team.add(draft("free", code), ACTOR, START).authentication_code == code


def test_refused_add_leaves_no_secret_and_no_key(team, bao, prefix):
    team.add(draft("acme", "CODE-1"), ACTOR, START)
    with pytest.raises(ConflictError):
        team.add(draft("other", "CODE-1"), ACTOR, START, secrets=TokenSecrets(pass_code="x"))
    kv = bao.client().secrets.kv.v2
    layout = Layout(prefix)
    assert kv.list_secrets(layout.names, mount_point=MOUNT)["data"]["keys"] == ["YWNtZQ"]
    assert team.secrets(2) is None  # the refused add's number
    with pytest.raises(NotFoundError):
        team.resolve("other")


def test_name_and_own_code_may_be_equal(team):
    token = team.add(draft("same", "same"), ACTOR, START)
    assert team.resolve("same") == token


def test_rename_moves_the_name_key(team):
    token = team.add(draft("old"), ACTOR, START)
    team.add(draft("taken", "CODE-t"), ACTOR, START)
    renamed = team.update(token.number, {"name": "new"}, ACTOR, START, event="renamed")
    assert team.resolve("new") == renamed
    with pytest.raises(NotFoundError):
        team.resolve("old")
    with pytest.raises(ConflictError, match="a token named 'taken' already exists"):
        team.update(token.number, {"name": "taken"}, ACTOR, START, event="renamed")
    with pytest.raises(ConflictError, match="is the authentication code of token 'taken'"):
        team.update(token.number, {"name": "CODE-t"}, ACTOR, START, event="renamed")
    assert team.resolve("new").name == "new"
    assert team.add(draft("old", "CODE-old2"), ACTOR, START).name == "old"
    assert team.check_integrity() == []


def test_keys_left_behind_by_a_cut_short_change_are_taken_over(team, bao, prefix, monkeypatch):
    kv = bao.client().secrets.kv.v2
    layout = Layout(prefix)
    token = team.add(draft("renamed"), ACTOR, START)
    team.update(token.number, {"name": "now"}, ACTOR, START, event="renamed")
    # A rename killed after writing the record left its old name's key behind.
    kv.create_or_update_secret(layout.name("renamed"), {"number": token.number}, mount_point=MOUNT)
    with pytest.raises(NotFoundError):
        team.resolve("renamed")  # the record says otherwise
    assert team.add(draft("renamed", "C-2"), ACTOR, START).name == "renamed"
    # An add killed after claiming its name: while young, it may be an add under way ...
    kv.create_or_update_secret(layout.name("pending"), {"number": 999}, mount_point=MOUNT)
    with pytest.raises(ConflictError) as pending:
        team.add(draft("pending"), ACTOR, START)
    assert pending.value.message == (
        "the name 'pending' is being given to a token by an add that has not finished"
    )
    assert "given up 2 minutes after it began" in (pending.value.hint or "")
    # ... and once old (by the server's clock: three minutes later), it is taken over.
    later = datetime.now(UTC) + timedelta(minutes=3)
    monkeypatch.setattr(team.kv, "server_time", lambda: later)
    assert team.add(draft("pending"), ACTOR, START).name == "pending"
    assert team.check_integrity() == []


# -- several machines -------------------------------------------------------------------


def test_two_machines_see_each_others_changes_at_once(open_team):
    laptop, cron_host = open_team(), open_team()
    added = laptop.add(draft("acme"), ACTOR, START, secrets=TokenSecrets(pass_code="v1"))
    assert cron_host.resolve("acme") == added
    assert cron_host.secrets(added.number) == TokenSecrets(pass_code="v1")
    cron_host.update(
        added.number,
        {"secret_set_at": START},
        Actor("support", "cron"),
        START,
        event="renewed",
        secrets=TokenSecrets(pass_code="v2"),
    )
    assert laptop.get(added.number).updated_by == "support"
    assert laptop.secrets(added.number) == TokenSecrets(pass_code="v2")
    laptop.delete(added.number, ACTOR, START, detail=None)
    with pytest.raises(NotFoundError):
        cron_host.get(added.number)


def _flip(token: Token) -> dict[str, Any]:
    effective = token.state is LifecycleState.EFFECTIVE
    return {"state": LifecycleState.NOT_EFFECTIVE if effective else LifecycleState.EFFECTIVE}


def test_concurrent_machines_lose_no_update_and_share_no_number(open_team):
    workers, rounds = 8, 6
    shared = open_team().add(draft("shared"), ACTOR, START)
    machines = [open_team() for _ in range(workers)]
    errors: list[BaseException] = []

    def work(index: int) -> None:
        try:
            machine = machines[index]
            actor = Actor(f"w{index}", "test")
            for i in range(rounds):
                machine.update_if(shared.number, _flip, actor, START, event="state changed")
                own = machine.add(draft(f"w{index}-{i}"), actor, START)
                machine.update(own.number, {"description": f"by {index}"}, actor, START, event="e")
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []
    check = open_team()
    tokens = check.tokens()
    assert len(tokens) == 1 + workers * rounds
    assert len({t.number for t in tokens}) == len(tokens)
    for token in tokens[1:]:
        assert token.description == f"by {token.name[1:].split('-')[0]}"
        assert [e.event for e in check.history(token.number)] == ["e", "created"]
    flips = [e for e in check.history(shared.number) if e.event == "state changed"]
    assert len(flips) == workers * rounds
    assert sorted(e.event_id for e in check.history(shared.number)) == list(
        range(1, workers * rounds + 2)
    )
    # An even number of flips brings the shared token back to where it started.
    assert check.get(shared.number).state is LifecycleState.EFFECTIVE
    assert check.check_integrity() == []


def test_secret_of_an_attempt_that_lost_is_put_back(open_team):
    laptop, cron_host = open_team(), open_team()
    token = laptop.add(draft("acme"), ACTOR, START, secrets=TokenSecrets(pass_code="first"))
    # The cron host renews: it has written its new secret, not yet its record ...
    cron_host.kv.write(
        cron_host.layout.secrets(token.definition, token.number),
        {"pass_code": "cron's"},
        cas=None,
        secret=True,
    )
    calls = 0

    def decide(current: Token) -> dict[str, Any] | None:
        nonlocal calls
        calls += 1
        if calls == 1:
            # ... and writes its record while the laptop decides: the laptop's secret
            # write (check-and-set on the cron host's version) succeeds, its record
            # write does not.
            cron_host.update(token.number, {"description": "cron's"}, ACTOR, START, event="r")
            return {"description": "laptop's"}
        return None  # seeing the cron host's renewal, the laptop no longer wants one

    result, changed = laptop.update_if(
        token.number, decide, ACTOR, START, event="renewed", secrets=TokenSecrets(pass_code="mine")
    )
    assert (calls, changed, result.description) == (2, False, "cron's")
    assert laptop.secrets(token.number) == TokenSecrets(pass_code="cron's")


# -- policies and failures ---------------------------------------------------------------


def _token_with_policy(bao: OpenBao, name: str, policy: str) -> str:
    root = bao.client()
    root.sys.create_or_update_policy(name, policy)
    return str(root.auth.token.create(policies=[name], ttl="1h")["auth"]["client_token"])


def records_only_policy(prefix: str) -> str:
    return "\n".join(
        f'path "{MOUNT}/data/{prefix}/{part}" {{ capabilities = ["read"] }}'
        for part in ("meta", "counter", "records/*", "names/*", "codes/*", "history/*")
    )


def test_records_only_identity_reads_records_but_not_secrets(team, bao, prefix, open_team):
    token = team.add(draft("acme"), ACTOR, START, secrets=TokenSecrets(pass_code="p"))
    ci = open_team(_token_with_policy(bao, f"ci-{prefix}", records_only_policy(prefix)))
    assert ci.tokens() == [token]
    assert ci.resolve("CODE-acme") == token
    assert [e.event for e in ci.history(token.number)] == ["created"]
    with pytest.raises(SecretStoreError) as refused:
        ci.secrets(token.number)
    assert refused.value.exit_code is ExitCode.SECRET_STORE
    assert refused.value.message == (
        f"this identity may not read secrets at {MOUNT}/{prefix}/secrets/api-key/"
        f"{token.number} on the team store {bao.address}"
    )
    with pytest.raises(SecretStoreError, match="this identity may not write the inventory at"):
        ci.add(draft("other"), ACTOR, START)
    with pytest.raises(SecretStoreError, match="may not read secrets"):
        ci.client_secret("exact-online", "c")


def test_expired_store_token_is_named(team, bao):
    token = _token_with_policy(bao, "short", 'path "*" { capabilities = ["read"] }')
    inventory = OpenBaoInventory(bao.address, token, MOUNT, team.prefix)
    bao.client().auth.token.revoke(token)
    with pytest.raises(SecretStoreError, match="does not accept the store token: it has expired"):
        inventory.tokens()
    inventory.close()


def test_missing_mount_and_unreachable_server(bao, prefix):
    with pytest.raises(SecretStoreError, match="has no secrets engine mounted at nowhere") as e:
        OpenBaoInventory(bao.address, bao.root_token, "nowhere", prefix)
    assert "bao secrets enable -path=nowhere -version=2 kv" in (e.value.hint or "")
    dead = f"http://127.0.0.1:{free_ports(1)[0]}"
    with pytest.raises(SecretStoreError) as down:
        OpenBaoInventory(dead, "t", MOUNT, prefix, timeout=5)
    assert down.value.message == (
        f"the team store {dead} does not answer (Connection refused): could not read "
        f"{MOUNT}/{prefix}/meta"
    )
    assert down.value.exit_code is ExitCode.SECRET_STORE
    with pytest.raises(UsageError, match="is not a path"):
        OpenBaoInventory(bao.address, bao.root_token, MOUNT, "a//b")


def test_a_kv_version_1_mount_is_named(bao, prefix):
    bao.client().sys.enable_secrets_engine("kv", path=f"v1-{prefix}", options={"version": "1"})
    inventory = OpenBaoInventory(bao.address, bao.root_token, f"v1-{prefix}", prefix)
    with pytest.raises(InventoryError, match="does not answer as KV version 2 does"):
        inventory.add(draft("acme"), ACTOR, START)
    inventory.close()


def test_sealed_server_is_exit_4_and_leaves_nothing_half_written(tmp_path, prefix):
    server = start_dev_server(tmp_path)  # its own: sealing the shared one would stop others
    server.enable_kv(MOUNT)
    try:
        inventory = OpenBaoInventory(
            server.address, server.root_token, MOUNT, prefix, retry_for=0.5
        )
        inventory.add(draft("acme"), ACTOR, START)
        server.client().sys.seal()
        with pytest.raises(SecretStoreError) as sealed:
            inventory.update(1, {"description": "x"}, ACTOR, START, event="edited")
        assert sealed.value.message == (
            f"the team store {server.address} is sealed: nothing in it can be read or written "
            f"(could not read {MOUNT}/{prefix}/records/0)"
        )
        assert "bao operator unseal" in (sealed.value.hint or "")
        assert sealed.value.exit_code is ExitCode.SECRET_STORE
        server.unseal()
        assert inventory.get(1).description is None  # nothing of the edit was written
        assert [e.event for e in inventory.history(1)] == ["created"]
        inventory.close()
    finally:
        server.stop()


def test_a_server_sealed_and_unsealed_during_a_change_is_waited_for(tmp_path, prefix):
    server = start_dev_server(tmp_path)  # its own: sealing the shared one would stop others
    server.enable_kv(MOUNT)
    try:
        inventory = OpenBaoInventory(server.address, server.root_token, MOUNT, prefix)
        inventory.add(draft("acme"), ACTOR, START, secrets=TokenSecrets(pass_code="old"))
        server.seal()
        unsealer = threading.Timer(1.0, server.unseal)
        unsealer.start()
        try:
            inventory.update(
                1,
                {"description": "x"},
                ACTOR,
                START,
                event="edited",
                secrets=TokenSecrets(pass_code="new"),
            )
        finally:
            unsealer.join()
        assert inventory.get(1).description == "x"
        assert inventory.secrets(1) == TokenSecrets(pass_code="new")
        assert [e.event for e in inventory.history(1)] == ["edited", "created"]
        inventory.close()
    finally:
        server.stop()


class _LoseAnswers:
    """A transport that sends the matching requests to the real server, then acts as if
    the connection dropped before the answer came back (the write has landed): the first
    request to each URL, up to ``times`` of them."""

    def __init__(self, inventory: OpenBaoInventory, method: str, fragment: str, times: int = 1):
        import requests.adapters

        self.lost: list[str] = []
        outer = self

        class Adapter(requests.adapters.HTTPAdapter):
            def send(self, request, *args, **kwargs):  # type: ignore[no-untyped-def]
                response = super().send(request, *args, **kwargs)
                if (
                    request.method == method
                    and fragment in request.url
                    and request.url not in outer.lost
                    and len(outer.lost) < times
                ):
                    outer.lost.append(request.url)
                    raise requests.exceptions.ConnectionError("Connection reset by peer")
                return response

        inventory.kv._session.mount("http://", Adapter())


def test_a_write_whose_answer_was_lost_is_retried_and_counted_once(team, prefix):
    token = team.add(draft("acme"), ACTOR, START, secrets=TokenSecrets(pass_code="old"))
    layout = Layout(prefix)
    lost = _LoseAnswers(team, "POST", "/", times=3)  # the secrets, the page, the history
    team.update(
        token.number,
        {"description": "x"},
        ACTOR,
        START,
        event="edited",
        secrets=TokenSecrets(pass_code="new"),
    )
    assert [url.rsplit(f"{prefix}/", 1)[1] for url in lost.lost] == [
        layout.secrets("api-key", 1).split(f"{prefix}/", 1)[1],
        "records/0",
        "history/1",
    ]
    # Each landed once: one version more each, one event, no conflict left over.
    versions = {
        path: team.kv.read(path, secret=True).version  # type: ignore[union-attr]
        for path in (layout.secrets("api-key", 1), layout.page(0), layout.history(1))
    }
    assert versions == {
        layout.secrets("api-key", 1): 2,
        layout.page(0): 2,
        layout.history(1): 2,
    }
    assert team.get(1).description == "x"
    assert team.secrets(1) == TokenSecrets(pass_code="new")
    assert [e.event for e in team.history(1)] == ["edited", "created"]


def test_a_create_only_add_whose_answers_were_lost_adds_once(team, prefix):
    lost = _LoseAnswers(team, "POST", "/", times=99)  # every write of the add
    token = team.add(draft("acme"), ACTOR, START, secrets=TokenSecrets(pass_code="p"))
    assert len(lost.lost) >= 6  # meta, counter, name, code, secrets, page, history
    assert token.number == 1
    assert [t.name for t in team.tokens()] == ["acme"]
    assert [e.event for e in team.history(1)] == ["created"]
    assert team.kv.read(Layout(prefix).counter).data == {"next": 2}  # type: ignore[union-attr]


def test_malformed_record_is_named(team, bao, prefix):
    team.add(draft("acme"), ACTOR, START)
    bao.client().secrets.kv.v2.create_or_update_secret(
        Layout(prefix).page(0), {"tokens": {"1": {"name": 5}}}, mount_point=MOUNT
    )
    with pytest.raises(
        InventoryError, match=f"{MOUNT}/{prefix}/records/0 on the team store .* is malformed"
    ):
        team.tokens()


# -- the commands on top ------------------------------------------------------------------


def test_commands_work_unchanged_on_the_team_store(bao, prefix, tmp_path):
    factory = openbao_inventory_factory(bao.address, bao.root_token, MOUNT, prefix)
    laptop = Cli(home=tmp_path / "laptop", inventory_factory=factory)
    cron = Cli(home=tmp_path / "cron", inventory_factory=factory)
    added = laptop(
        "add", "acme", "--definition", "api-key", "--secret-stdin", "--json", input="p4ss"
    )
    assert added.exit_code == 0, added.stderr
    assert added.json()["token"]["number"] == 1
    listed = cron("list", "--json")
    assert listed.exit_code == 0, listed.stderr
    assert [t["name"] for t in listed.json()["tokens"]] == ["acme"]
    shown = cron("show", "acme", "--json")
    assert shown.exit_code == 0, shown.stderr
    assert [e["event"] for e in shown.json()["token"]["history"]] == ["secret set", "created"]
    assert cron("token", "acme").stdout == "p4ss\n"
    renewed = cron("renew", "acme", "--secret-stdin", input="n3w")
    assert renewed.exit_code == 0, renewed.stderr
    assert laptop("token", "acme").stdout == "n3w\n"
    again = laptop("add", "acme", "--definition", "api-key", "--secret-stdin", input="x")
    assert again.exit_code == 1 and "already exists" in again.stderr
    deleted = laptop("delete", "acme", "--yes")
    assert deleted.exit_code == 0, deleted.stderr
    assert cron("show", "acme").exit_code == 3
    assert cron("list", "--json").json()["tokens"] == []
    for home in (laptop.home, cron.home):
        assert not (home / "inventory.sqlite3").exists()  # nothing went to a local store


def test_records_only_identity_on_the_commands(bao, prefix, tmp_path):
    root = openbao_inventory_factory(bao.address, bao.root_token, MOUNT, prefix)
    consultant = Cli(home=tmp_path / "laptop", inventory_factory=root)
    consultant("add", "acme", "--definition", "api-key", "--secret-stdin", input="p4ss")
    ci_token = _token_with_policy(bao, f"ci-check-{prefix}", records_only_policy(prefix))
    ci = Cli(
        home=tmp_path / "ci",
        inventory_factory=openbao_inventory_factory(bao.address, ci_token, MOUNT, prefix),
    )
    assert [t["name"] for t in ci("list", "--json").json()["tokens"]] == ["acme"]
    assert ci("show", "acme").exit_code == 0
    assert ci("check").exit_code == 0
    refused = ci("token", "acme")
    assert refused.exit_code == 4
    assert "this identity may not read secrets at" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_tokens_the_provider_rotated_are_kept_when_the_store_fails(
    tmp_path, prefix, oidc, monkeypatch
):
    import json
    import urllib.parse
    import urllib.request

    from tests.oauth_support import RealClock, ScriptedBrowser, configure
    from tokenctl.oauth.client import ProviderClient

    server = start_dev_server(tmp_path / "bao")  # its own: it is sealed mid-refresh
    server.enable_kv(MOUNT)
    try:

        def factory(paths: Any, keyring: Any) -> OpenBaoInventory:
            return OpenBaoInventory(server.address, server.root_token, MOUNT, prefix, retry_for=0.3)

        cli = Cli(home=tmp_path / "home", clock=RealClock(), inventory_factory=factory)  # type: ignore[arg-type]
        definition = configure(cli, tmp_path, oidc)
        cli.browser = ScriptedBrowser(oidc)
        assert cli("add", "acme", "--definition", definition, "--yes").exit_code == 0
        cli.browser = None
        answered = ProviderClient.refresh

        def refresh_then_seal(self: ProviderClient, refresh_token: str) -> Any:
            answer = answered(self, refresh_token)  # the provider rotated the refresh token
            server.seal()  # ... and the store fails before it holds the new one
            return answer

        with monkeypatch.context() as patch:
            patch.setattr(ProviderClient, "refresh", refresh_then_seal)
            failed = cli("renew", "acme")
        assert failed.exit_code == 4, failed.stderr
        assert "the provider renewed 'acme', but the new tokens could not be stored" in (
            failed.stderr
        )
        assert f"the team store {server.address} is sealed" in failed.stderr
        [kept] = list(cli.home.rglob("*-token-1.json"))
        assert str(kept) in failed.stderr.replace("\n", "")
        assert kept.stat().st_mode & 0o077 == 0
        # Sealed under a key the keyring holds, never the tokens in plaintext.
        document = json.loads(kept.read_text())
        assert set(document) >= {"sealed", "number", "inventory_id"}
        assert "refresh_token" not in kept.read_text() and "access_token" not in kept.read_text()
        assert cli.keyring.get_text("unsaved-key")
        # The lease could not be given up either (said, not raised); it would end by
        # itself after its ttl: the test takes it away instead of waiting that long.
        assert "the refresh lease could not be given up" in failed.stderr
        server.unseal()
        server.client().secrets.kv.v2.delete_metadata_and_all_versions(
            f"{prefix}/leases/1", mount_point=MOUNT
        )
        renewed = cli("renew", "acme")
        assert renewed.exit_code == 0, renewed.stderr
        assert not kept.exists()
        # The grant survived: the provider accepts the refresh token the store holds now.
        inventory = factory(None, None)
        stored = inventory.secrets(1)
        inventory.close()
        assert stored is not None and stored.refresh_token
        body = urllib.parse.urlencode(
            {
                "grant_type": "refresh_token",
                "refresh_token": stored.refresh_token,
                "client_id": "tokenctl-public",
            }
        ).encode()
        endpoint = oidc.metadata()["token_endpoint"]
        with urllib.request.urlopen(urllib.request.Request(endpoint, data=body), timeout=30) as r:
            assert "access_token" in json.loads(r.read())
    finally:
        server.stop()


def test_a_retried_write_does_not_take_another_machines_equal_write_for_its_own(bao, prefix):
    """The first attempt's answer is lost, and meanwhile another machine wrote the very
    same values (both drew the same next number): the retry is refused by check-and-set
    and must report the conflict, not claim the other machine's version as its own."""
    import requests

    from tokenctl.store.openbao.kv import WRITE_ID, CasConflict, KvStore

    path = f"{prefix}/counter"
    ours = KvStore(bao.address, bao.root_token, MOUNT, retry_for=5.0)
    theirs = KvStore(bao.address, bao.root_token, MOUNT)
    try:
        assert ours.write(path, {"next": 1}, cas=0) == 1  # the server has answered us
        real = ours._kv.create_or_update_secret
        calls = []

        def lost_answer(*args: Any, **kwargs: Any) -> Any:
            calls.append(kwargs.get("cas"))
            if len(calls) == 1:  # the other machine's write lands; our answer is lost
                theirs.write(path, {"next": 2}, cas=1)
                raise requests.exceptions.ConnectionError("connection reset by peer")
            return real(*args, **kwargs)

        ours._kv.create_or_update_secret = lost_answer
        with pytest.raises(CasConflict):
            ours.write(path, {"next": 2}, cas=1)
        assert calls == [1, 1]  # retried once, refused
        # Each stored version carries its own write's id; reads hand back the values only.
        entry = theirs.read(path)
        assert entry is not None and entry.data == {"next": 2} and entry.version == 2
        raw = bao.client().secrets.kv.v2.read_secret_version(
            path, mount_point=MOUNT, raise_on_deleted_version=True
        )["data"]["data"]
        assert set(raw) == {"next", WRITE_ID} and len(raw[WRITE_ID]) == 32
    finally:
        ours.close()
        theirs.close()


def test_a_retried_write_whose_first_attempt_landed_returns_that_version(bao, prefix):
    import requests

    from tokenctl.store.openbao.kv import KvStore

    path = f"{prefix}/counter"
    ours = KvStore(bao.address, bao.root_token, MOUNT, retry_for=5.0)
    try:
        assert ours.write(path, {"next": 1}, cas=0) == 1
        real = ours._kv.create_or_update_secret
        calls = []

        def landed_then_lost(*args: Any, **kwargs: Any) -> Any:
            calls.append(kwargs.get("cas"))
            answer = real(*args, **kwargs)
            if len(calls) == 1:
                raise requests.exceptions.ConnectionError("connection reset by peer")
            return answer

        ours._kv.create_or_update_secret = landed_then_lost
        assert ours.write(path, {"next": 2}, cas=1) == 2
        assert calls == [1, 1]
    finally:
        ours.close()
