"""Group commit: renewals recorded at about the same time share one commit, none is lost."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from datetime import timedelta
from pathlib import Path

import pytest

from tests.fakes import START, MemoryKeyring
from tokenctl.errors import InventoryError, NotFoundError
from tokenctl.inventory.sqlite import SqliteInventory
from tokenctl.inventory.worker import LoopGroups, server_steps
from tokenctl.models import Actor, Token, TokenSecrets

ACTOR = Actor(user="tester", unit="testhost")


def _inventory(home: Path, count: int) -> SqliteInventory:
    inventory = SqliteInventory(home / "inventory.sqlite3", lambda: MemoryKeyring())
    for index in range(count):
        inventory.add(
            Token(number=0, name=f"t{index}", authentication_code=f"C{index}", definition="x"),
            ACTOR,
            START,
            secrets=TokenSecrets(access_token=f"AT-{index}", refresh_token=f"RT-{index}"),
        )
    return inventory


def _committed_descriptions(home: Path) -> dict[int, str | None]:
    """What another process sees: only committed data."""
    connection = sqlite3.connect(home / "inventory.sqlite3")
    try:
        return dict(connection.execute("SELECT number, description FROM tokens").fetchall())
    finally:
        connection.close()


def _describe(inventory: SqliteInventory, number: int, text: str) -> Token:
    return inventory.update(number, {"description": text}, ACTOR, START, event="edited")


def _refusing_group(inventory: SqliteInventory):
    """A group opener whose commit is refused ("disk full"): the group is rolled back."""

    def opener():
        group = inventory.group_commit()

        class Refused:
            def __enter__(self) -> None:
                group.__enter__()

            def __exit__(self, *exc: object) -> bool:
                group.__exit__(RuntimeError, RuntimeError("disk full"), None)
                raise InventoryError("the token inventory refused a change: disk full")

        return Refused()

    return opener


def test_changes_of_a_group_are_invisible_until_it_commits_and_then_all_there(tmp_path):
    inventory = _inventory(tmp_path, 3)
    try:
        with inventory.group_commit():
            for number in (1, 2, 3):
                _describe(inventory, number, f"renewed {number}")
            # Each change is done (its own statements ran), none committed yet.
            assert inventory.get(2).description == "renewed 2"
            assert set(_committed_descriptions(tmp_path).values()) == {None}
        assert _committed_descriptions(tmp_path) == {n: f"renewed {n}" for n in (1, 2, 3)}
    finally:
        inventory.close()


def test_a_failing_change_fails_alone_and_the_others_of_its_group_commit(tmp_path):
    inventory = _inventory(tmp_path, 2)
    try:
        with inventory.group_commit():
            _describe(inventory, 1, "kept")
            with pytest.raises(NotFoundError):
                _describe(inventory, 99, "no such token")

            def refuse(current: Token) -> None:
                raise ValueError("a decision that fails midway")

            with pytest.raises(ValueError):
                inventory.update_if(2, refuse, ACTOR, START, event="edited")
            _describe(inventory, 2, "also kept")
        assert _committed_descriptions(tmp_path) == {1: "kept", 2: "also kept"}
        events = [event.event for event in inventory.history(1)]
        assert events.count("edited") == 1
    finally:
        inventory.close()


def test_a_change_outside_the_group_commits_what_the_group_did_first(tmp_path):
    inventory = _inventory(tmp_path, 2)
    try:
        with inventory.group_commit():
            _describe(inventory, 1, "grouped")
            # A change that others rely on being durable at once (add is one): the
            # group's earlier change is committed with it, never held back behind it.
            inventory.add(
                Token(number=0, name="new", authentication_code="NEW", definition="x"),
                ACTOR,
                START,
            )
            assert _committed_descriptions(tmp_path)[1] == "grouped"
            _describe(inventory, 2, "after")
            assert _committed_descriptions(tmp_path)[2] is None
        assert _committed_descriptions(tmp_path)[2] == "after"
    finally:
        inventory.close()


def _on_a_loop(steps):
    """Run the coroutine function ``steps`` on a fresh event loop."""
    return asyncio.run(steps())


def test_loop_groups_run_the_steps_of_one_turn_in_one_group_and_hand_results_on_after_it(
    tmp_path,
):

    inventory = _inventory(tmp_path, 8)
    seen_at_result: dict[int, str | None] = {}
    groups = []

    def counted_group():
        groups.append(1)
        return inventory.group_commit()

    async def steps() -> dict[int, str | None]:
        with LoopGroups(counted_group) as executor:
            futures = {
                number: executor.submit(_describe, inventory, number, f"renewed {number}")
                for number in range(1, 9)
            }
            # Ran at once (the loop's thread), not yet committed: nobody sees them yet.
            assert set(_committed_descriptions(tmp_path).values()) == {None}
            assert not any(future.done() for future in futures.values())
            for number, future in futures.items():
                future.add_done_callback(
                    lambda _f, n=number: seen_at_result.__setitem__(
                        n, _committed_descriptions(tmp_path)[n]
                    )
                )
            results = await asyncio.gather(*(asyncio.wrap_future(f) for f in futures.values()))
            return {token.number: token.description for token in results}

    try:
        renewed = _on_a_loop(steps)
        assert renewed == {n: f"renewed {n}" for n in range(1, 9)}
        assert len(groups) == 1  # one turn of the loop, one group, one commit
        # Each result came when its change was already durable, visible to others.
        assert seen_at_result == renewed
    finally:
        inventory.close()


def test_loop_groups_give_a_failing_step_its_own_error(tmp_path):
    inventory = _inventory(tmp_path, 1)

    async def steps() -> None:
        with LoopGroups(inventory.group_commit) as executor:
            missing = asyncio.wrap_future(executor.submit(_describe, inventory, 42, "nothing"))
            kept = asyncio.wrap_future(executor.submit(_describe, inventory, 1, "kept"))
            with pytest.raises(NotFoundError):
                await missing
            assert (await kept).description == "kept"

    try:
        _on_a_loop(steps)
        assert _committed_descriptions(tmp_path) == {1: "kept"}
    finally:
        inventory.close()


def test_loop_groups_fail_every_step_of_a_group_that_cannot_commit_or_begin(tmp_path):
    inventory = _inventory(tmp_path, 2)

    def no_group():
        raise InventoryError("the inventory is gone")

    async def steps() -> None:
        with LoopGroups(_refusing_group(inventory)) as executor:
            first = asyncio.wrap_future(executor.submit(_describe, inventory, 1, "lost"))
            second = asyncio.wrap_future(executor.submit(_describe, inventory, 2, "lost too"))
            for future in (first, second):
                with pytest.raises(InventoryError, match="disk full"):
                    await future
        with LoopGroups(no_group) as executor, pytest.raises(InventoryError, match="gone"):
            await asyncio.wrap_future(executor.submit(lambda: "never run"))

    try:
        _on_a_loop(steps)
        assert _committed_descriptions(tmp_path) == {1: None, 2: None}
    finally:
        inventory.close()


def test_loop_groups_commit_the_open_group_when_shut_down_and_then_take_no_more(tmp_path):

    inventory = _inventory(tmp_path, 1)

    async def steps() -> None:
        executor = LoopGroups(inventory.group_commit)
        future = executor.submit(_describe, inventory, 1, "kept at shutdown")
        executor.shutdown()  # before the loop's next turn: the group commits now
        assert future.result(0).description == "kept at shutdown"
        with pytest.raises(RuntimeError, match="shut down"):
            executor.submit(_describe, inventory, 1, "late")
        await asyncio.sleep(0)  # the scheduled commit finds nothing left to do

    try:
        _on_a_loop(steps)
        assert _committed_descriptions(tmp_path) == {1: "kept at shutdown"}
    finally:
        inventory.close()


def test_a_step_awaited_by_a_cancelled_task_still_commits_with_its_group(tmp_path):
    """``step_future`` on the loop: the awaiting task is cancelled before the commit; the
    change was made and commits with the others, and the commit does not trip over the
    cancelled future."""
    from tokenctl.inventory.worker import step_future

    inventory = _inventory(tmp_path, 2)

    async def steps() -> str:
        with LoopGroups(inventory.group_commit) as executor:
            abandoned = asyncio.ensure_future(
                step_future(executor, _describe, inventory, 1, "made, then abandoned")
            )
            kept = step_future(executor, _describe, inventory, 2, "kept")
            abandoned.cancel()
            with pytest.raises(asyncio.CancelledError):
                await abandoned
            return (await kept).description

    try:
        assert _on_a_loop(steps) == "kept"
        assert _committed_descriptions(tmp_path) == {1: "made, then abandoned", 2: "kept"}
    finally:
        inventory.close()


def test_renew_all_renews_every_token_with_group_commit(tmp_path):
    """The grouped path end to end, through the real command on a mock provider."""
    import itertools
    import json

    import httpx2

    from tests.fakes import Cli

    issued = itertools.count(1)

    def answer(request: httpx2.Request) -> httpx2.Response:
        number = next(issued)
        return httpx2.Response(
            200,
            json={
                "access_token": f"AT-new-{number}",
                "refresh_token": f"RT-new-{number}",
                "token_type": "Bearer",
                "expires_in": 3600,
            },
        )

    home = tmp_path / "home"
    home.mkdir()
    (home / "definitions.toml").write_text(
        "[definitions.books]\ntitle = 'Books'\nkind = 'oauth2'\n"
        "[definitions.books.oauth2]\n"
        "token_endpoint = 'https://books.example/token'\n"
        "authorization_endpoint = 'https://books.example/authorize'\n"
        "client_id = 'c'\ntoken_endpoint_auth_method = 'none'\n"
        "scopes = ['openid', 'offline_access']\nmax_concurrent_requests = 8\n"
    )
    cli = Cli(home)
    cli.transport = httpx2.MockTransport(answer)
    inventory = SqliteInventory(home / "inventory.sqlite3", lambda: cli.keyring)
    try:
        for index in range(40):
            inventory.add(
                Token(
                    number=0,
                    name=f"t{index}",
                    authentication_code=f"C{index}",
                    definition="books",
                    expires_at=START - timedelta(minutes=1),
                    secret_set_at=START - timedelta(hours=1),
                ),
                ACTOR,
                START,
                secrets=TokenSecrets(access_token="AT-old", refresh_token=f"RT-old-{index}"),
            )
    finally:
        inventory.close()
    result = cli("renew", "--all", "--json", "--concurrency", "8")
    assert result.exit_code == 0, result.stderr
    outcomes = [item["outcome"] for item in json.loads(result.stdout)["renewals"]]
    assert outcomes == ["refreshed"] * 40
    stored = {cli.stored(f"t{index}").refresh_token for index in range(40)}
    assert stored == {f"RT-new-{number}" for number in range(1, 41)}


def test_a_failed_commit_inside_a_group_fails_the_whole_group(tmp_path, monkeypatch):
    """A change that must commit at once finds the commit refused: nothing of the group
    may then be reported as stored, not even the changes whose calls had returned."""
    inventory = _inventory(tmp_path, 2)
    try:
        real = inventory._connection

        class RefusingCommit:
            in_transaction = property(lambda self: real.in_transaction)

            def execute(self, sql, *args):
                if sql == "COMMIT":
                    raise sqlite3.OperationalError("disk I/O error")
                return real.execute(sql, *args)

        with pytest.raises(InventoryError, match="refused a change"), inventory.group_commit():
            _describe(inventory, 1, "returned, then lost")
            monkeypatch.setattr(inventory, "_connection", RefusingCommit())
            with pytest.raises(InventoryError):
                inventory.add(
                    Token(number=0, name="n", authentication_code="N", definition="x"),
                    ACTOR,
                    START,
                )
            monkeypatch.setattr(inventory, "_connection", real)
        assert _committed_descriptions(tmp_path) == {1: None, 2: None}
    finally:
        inventory.close()


@pytest.mark.parametrize("executor", [lambda _group: server_steps(4), LoopGroups])
def test_a_cancelled_renewal_still_records_the_answer_before_it_lets_go(
    tmp_path, monkeypatch, executor
):
    """Ctrl-C in `renew --all` after the provider answered: the new refresh token is stored
    (its record runs to its end) before the token's lock is given up."""
    import io
    import time

    import httpx2

    from tests.fakes import MemoryKeyring
    from tokenctl.context import AppContext
    from tokenctl.iostreams import IOStreams
    from tokenctl.services import refresh

    home = tmp_path / "home"
    home.mkdir()
    (home / "definitions.toml").write_text(
        "[definitions.books]\ntitle = 'Books'\nkind = 'oauth2'\n"
        "[definitions.books.oauth2]\n"
        "token_endpoint = 'https://books.example/token'\n"
        "authorization_endpoint = 'https://books.example/authorize'\n"
        "client_id = 'c'\ntoken_endpoint_auth_method = 'none'\nscopes = ['openid']\n"
    )
    answer = {"access_token": "AT-new", "refresh_token": "RT-new", "token_type": "Bearer"}
    keyring = MemoryKeyring()
    ctx = AppContext(
        io=IOStreams(
            stdin=io.StringIO(), stdout=io.StringIO(), stderr=io.StringIO(),
            stdin_tty=False, stdout_tty=False, stderr_tty=False, color=False, width=100,
        ),
        environ={"TOKENCTL_HOME": str(home)},
        keyring_factory=lambda paths: keyring,
        user_name=lambda: "tester",
        host_name=lambda: "testhost",
        http_transport=httpx2.MockTransport(lambda request: httpx2.Response(200, json=answer)),
    )  # fmt: skip
    token = ctx.inventory.add(
        Token(number=0, name="acme", authentication_code="C-1", definition="books",
              secret_set_at=START),
        ACTOR,
        START,
        secrets=TokenSecrets(access_token="AT-old", refresh_token="RT-old"),
    )  # fmt: skip
    definition = ctx.definitions.require("books")
    client = ctx.provider_client(definition, token.attributes)
    recording, released = threading.Event(), []
    real_record = refresh._Steps.record

    def slow_record(self, state):
        recording.set()
        if executor is LoopGroups:  # on the loop: the task is cancelled right here
            asyncio.current_task().cancel()
        else:
            time.sleep(0.5)  # on the worker: the task is cancelled while this runs
        return real_record(self, state)

    monkeypatch.setattr(refresh._Steps, "record", slow_record)
    real_release = refresh.release_lease

    def committed_refresh_token() -> str | None:
        # Through a connection of its own: what is durable, not what the group holds.
        other = SqliteInventory(home / "inventory.sqlite3", lambda: keyring)
        try:
            return other.secrets(1).refresh_token
        finally:
            other.close()

    monkeypatch.setattr(
        refresh,
        "release_lease",
        lambda c, t, lease: (released.append(committed_refresh_token()),
                             real_release(c, t, lease))[-1],
    )  # fmt: skip

    async def cancel_midway() -> None:
        with executor(ctx.inventory.group_commit) as worker:
            task = asyncio.create_task(refresh.refresh_token_async(ctx, token, client, worker))
            while not recording.is_set():
                await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        assert task.cancelled()

    try:
        asyncio.run(cancel_midway())
        assert ctx.inventory.secrets(1).refresh_token == "RT-new"
        assert released == ["RT-new"]  # the lock was given up only once it was stored
    finally:
        ctx.close()
