"""Several tokenctl processes at once lose no update and never see a half-written record."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from tests.proc import tokenctl
from tokenctl.inventory.sqlite import SqliteInventory
from tokenctl.models import Actor, LifecycleState, Token

WORKERS = 8
PER_WORKER = 25


def _flip(token: Token) -> dict[str, LifecycleState]:
    effective = token.state is LifecycleState.EFFECTIVE
    return {"state": LifecycleState.NOT_EFFECTIVE if effective else LifecycleState.EFFECTIVE}


def _worker(path: str, worker: int) -> None:
    inventory = SqliteInventory(Path(path))
    actor = Actor(user=f"w{worker}", unit="test")
    for i in range(PER_WORKER):
        now = datetime.now(UTC)
        token = inventory.add(
            Token(
                number=0,
                name=f"w{worker}-t{i}",
                authentication_code=f"CODE-{worker}-{i}",
                definition="api-key",
            ),
            actor,
            now,
        )
        # Every worker also flips the state of one shared token, read-modify-write: a lost
        # update would show as a final state that does not match the number of flips.
        inventory.update_if(1, _flip, actor, now, event="state changed")
        inventory.update(
            token.number, {"description": f"by worker {worker}"}, actor, now, event="edited"
        )
    inventory.close()


def test_parallel_processes_on_the_inventory_lose_nothing(tmp_path):
    path = tmp_path / "inventory.sqlite3"
    setup = SqliteInventory(path)
    setup.add(
        Token(
            number=0,
            name="shared",
            authentication_code="SHARED",
            definition="api-key",
        ),
        Actor("setup", "test"),
        datetime.now(UTC),
    )
    setup.close()
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_worker, args=(str(path), w)) for w in range(WORKERS)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(120)
        assert process.exitcode == 0
    inventory = SqliteInventory(path)
    tokens = inventory.tokens()
    assert len(tokens) == 1 + WORKERS * PER_WORKER
    assert len({t.number for t in tokens}) == len(tokens)
    for token in tokens:
        if token.name != "shared":
            worker = token.name.split("-")[0][1:]
            assert token.description == f"by worker {worker}"
            assert [e.event for e in inventory.history(token.number)] == ["edited", "created"]
    shared = inventory.resolve("shared")
    flips = [e for e in inventory.history(shared.number) if e.event == "state changed"]
    assert len(flips) == WORKERS * PER_WORKER
    # An even number of flips brings the shared token back to where it started.
    assert shared.state is LifecycleState.EFFECTIVE
    assert inventory.check_integrity() == []


def test_parallel_cli_adds_with_the_real_keyring(tmp_path, real_keyring):
    home = tmp_path / "home"
    env = real_keyring.child_env()

    def add(i: int):  # type: ignore[no-untyped-def]
        return tokenctl(
            "add",
            f"t{i}",
            "--definition",
            "api-key",
            "--secret-stdin",
            home=home,
            env=env,
            input=f"secret-{i}",
        )

    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(add, range(12)))
    assert [r.exit_code for r in results] == [0] * 12, [r.stderr for r in results]
    tokens = tokenctl("list", "--json", home=home, env=env).json()["tokens"]
    assert sorted(t["name"] for t in tokens) == sorted(f"t{i}" for i in range(12))
    assert sorted(t["number"] for t in tokens) == list(range(1, 13))
    # Twelve processes racing for the inventory's first secret made one data key between
    # them, and every secret opens with it.
    assert len(real_keyring.items("tokenctl")) == 1
    for i in range(12):
        assert tokenctl("token", f"t{i}", home=home, env=env).stdout == f"secret-{i}\n"


def test_a_held_token_lock_is_not_waited_for_by_try_acquire(tmp_path):
    from tokenctl.fsutil import FileLock

    holder, other = FileLock(tmp_path / "t.lock"), FileLock(tmp_path / "t.lock")
    holder.acquire()
    try:
        assert other.try_acquire() is False  # held: answered at once, nothing taken
    finally:
        holder.release()
    assert other.try_acquire() is True
    other.release()
    other.release()  # releasing twice (a cancelled wait) is harmless
