"""How ``tests/data/store-0.x`` was made: by tokenctl 0.x itself (commit 57dc83b).

The last layout with one keyring entry per token (schema v3). Run with that tokenctl first
on the path, against a private Secret Service::

    git worktree add --detach /tmp/old 57dc83b
    PYTHONPATH=/tmp/old/src .venv/bin/python tests/data/store-0.x/make_store.py OUT

It writes OUT/inventory.sqlite3 and OUT/definitions.toml as 0.x left them, and
OUT/keyring.json with every keyring entry it wrote (the inventory's path in them is
replaced by ``@INVENTORY@`` when the fixture is copied in, see tests/test_legacy_upgrade.py).
Token #2 was deleted, so the next number is 6, not 5.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO))

from tests.peers.secret_service import start_secret_service  # noqa: E402


def main(out: Path) -> None:
    """Make the store with the tokenctl on ``PYTHONPATH`` and copy it to ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp()) / "home"
    service = start_secret_service(tempfile.mkdtemp())
    env = {**service.child_env(), "TOKENCTL_HOME": str(home)}
    env.pop("TOKENCTL_DEBUG", None)
    if "PYTHONPATH" in os.environ:  # where the tokenctl 0.x checkout is
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]

    def run(*args: str, secret: str = "") -> None:
        done = subprocess.run(
            [sys.executable, "-m", "tokenctl", *args],
            input=secret,
            text=True,
            capture_output=True,
            env=env,
            check=False,
        )
        if done.returncode != 0:
            raise SystemExit(f"{args}: {done.stderr}")

    try:
        run("add", "acme-api", "--definition", "api-key", "--description", "Acme BV export",
            "--expires-in", "3650d", "--secret-stdin", secret="pc-acme-0x")  # fmt: skip
        run("add", "gone", "--definition", "api-key", "--secret-stdin", secret="pc-gone-0x")
        run("add", "twinfield-ws", "--definition", "basic-credentials", "--identifier",
            "WS-USER", "--secret-stdin", secret="pc-basic-0x")  # fmt: skip
        run("add", "paused", "--definition", "api-key", "--secret-stdin", secret="pc-paused-0x")
        run("disable", "paused")
        run("delete", "gone", "--yes")
        (home / "definitions.toml").write_text(
            '[definitions.acme-books]\ntitle = "Acme Books"\nkind = "oauth2"\n'
            'classification = "Accounting"\n[definitions.acme-books.oauth2]\n'
            'authorization_endpoint = "https://books.example/authorize"\n'
            'token_endpoint = "https://books.example/token"\nscopes = ["invoices"]\n'
        )
        run("definitions", "configure", "acme-books", "--client-id", "tokenctl-basic",
            "--client-secret-stdin", secret="cs-basic-0x")  # fmt: skip
        run("add", "books-later", "--definition", "acme-books", "--no-login")
        inventory = str((home / "inventory.sqlite3").resolve())
        entries = {
            item.attributes["username"]: item.secret.replace(inventory, "@INVENTORY@")
            for item in service.items("tokenctl")
        }
    finally:
        service.stop()
    connection = sqlite3.connect(home / "inventory.sqlite3")
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()
    shutil.copy(home / "inventory.sqlite3", out / "inventory.sqlite3")
    shutil.copy(home / "definitions.toml", out / "definitions.toml")
    (out / "keyring.json").write_text(json.dumps(entries, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
