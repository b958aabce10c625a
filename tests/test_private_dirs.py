"""Every directory tokenctl creates is 0700 and every file 0600, whatever the umask.

``mkdir(parents=True)`` would give the parents it creates the umask's mode (0755 under
umask 022, 0777 under 000), where another user could plant a ``definitions.toml``.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

DEFINITION = """
[definitions.house-key]
title = "House key"
kind = "static"
"""


def _run(umask: int, home: Path, env: dict[str, str], *args: str, input: str = "") -> str:
    """``python -m tokenctl ARGS`` started under ``umask``; returns its stdout."""
    command = [
        sys.executable,
        "-c",
        f"import os, runpy; os.umask({umask:#o}); "
        "runpy.run_module('tokenctl', run_name='__main__')",
        *args,
    ]
    completed = subprocess.run(
        command,
        input=input,
        capture_output=True,
        text=True,
        env={**env, "TOKENCTL_HOME": str(home)},
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, (args, completed.stderr)
    return completed.stdout


@pytest.mark.parametrize("umask", [0o022, 0o000], ids=["umask-022", "umask-000"])
def test_created_directories_are_0700_and_files_0600(tmp_path, real_keyring, umask):
    env = real_keyring.child_env()
    top = tmp_path / "not-yet"  # does not exist: tokenctl creates it and all below
    home = top / "several" / "levels" / "home"
    source = tmp_path / "house.toml"
    source.write_text(DEFINITION)
    before = stat.S_IMODE(tmp_path.stat().st_mode)
    _run(umask, home, env, "definitions", "add", "--file", str(source))
    _run(
        umask,
        home,
        env,
        "add",
        "front",
        "--definition",
        "house-key",
        "--secret-stdin",
        input="s3cret\n",
    )
    assert _run(umask, home, env, "token", "front") == "s3cret\n"
    _run(umask, home, env, "renew", "--all")
    report = _run(umask, home, env, "doctor")
    assert any(line.startswith("ok   permissions") for line in report.splitlines()), report
    directories = [top, *(p for p in top.rglob("*") if p.is_dir())]
    files = [p for p in top.rglob("*") if p.is_file()]
    assert {home / "cache", home / "definitions.toml", home / "inventory.sqlite3"} <= {
        *directories,
        *files,
    }
    modes = {str(p.relative_to(tmp_path)): oct(stat.S_IMODE(p.stat().st_mode)) for p in directories}
    assert set(modes.values()) == {"0o700"}, modes
    modes = {str(p.relative_to(tmp_path)): oct(stat.S_IMODE(p.stat().st_mode)) for p in files}
    assert set(modes.values()) == {"0o600"}, modes
    # A directory that existed already is not tokenctl's to change.
    assert stat.S_IMODE(tmp_path.stat().st_mode) == before


def test_an_existing_directory_keeps_its_mode(tmp_path):
    from tokenctl.fsutil import ensure_private_dir

    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o755)
    old = os.umask(0)
    try:
        ensure_private_dir(shared / "a" / "b")
    finally:
        os.umask(old)
    assert stat.S_IMODE(shared.stat().st_mode) == 0o755
    assert stat.S_IMODE((shared / "a").stat().st_mode) == 0o700
    assert stat.S_IMODE((shared / "a" / "b").stat().st_mode) == 0o700
