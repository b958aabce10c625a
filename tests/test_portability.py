"""Windows, macOS and WSL: the parts of tokenctl that differ by platform.

There is no Windows or WSL here: the platform is faked where tokenctl asks for it
(``sys.platform``, ``/proc``, ``PATH``), and what Windows does differently (a directory
cannot be opened as a file) is imitated.
"""

from __future__ import annotations

import os
import stat
import sys
import threading
import time
from pathlib import Path

import pytest

from tokenctl import context

URL = "http://127.0.0.1:8765/authorize?client_id=x&state=a%20b&scope=openid+offline"


def _proc(tmp_path: Path, osrelease: str | None = None, version: str | None = None) -> Path:
    """A fake ``/proc`` with the kernel's release and version strings."""
    proc = tmp_path / "proc"
    (proc / "sys" / "kernel").mkdir(parents=True)
    if osrelease is not None:
        (proc / "sys" / "kernel" / "osrelease").write_text(osrelease + "\n")
    if version is not None:
        (proc / "version").write_text(version + "\n")
    return proc


def _which(*present: str):  # type: ignore[no-untyped-def]
    return lambda name: f"/usr/bin/{name}" if name in present else None


WSL2 = "5.15.167.4-microsoft-standard-WSL2"
WSL1 = "Linux version 4.4.0-19041-Microsoft (Microsoft@Microsoft.com) (gcc version 5.4.0) #1"


def test_wsl_2_opens_the_url_with_wslview(tmp_path):
    proc = _proc(tmp_path, osrelease=WSL2)
    assert context.wsl_browser_command({}, proc, _which("wslview", "explorer.exe")) == [
        "/usr/bin/wslview"
    ]


def test_wsl_without_wslu_opens_the_url_with_explorer(tmp_path):
    proc = _proc(tmp_path, osrelease=WSL2)
    assert context.wsl_browser_command({}, proc, _which("explorer.exe")) == [
        "/usr/bin/explorer.exe"
    ]


def test_wsl_1_is_recognised_by_its_kernel_version(tmp_path):
    proc = _proc(tmp_path, osrelease="4.4.0-19041", version=WSL1)
    assert context.wsl_browser_command({}, proc, _which("explorer.exe")) == [
        "/usr/bin/explorer.exe"
    ]


def test_wsl_is_recognised_by_its_distribution_variable(tmp_path):
    proc = _proc(tmp_path)  # no kernel files readable
    environ = {"WSL_DISTRO_NAME": "Ubuntu-24.04"}
    assert context.wsl_browser_command(environ, proc, _which("wslview")) == ["/usr/bin/wslview"]


def test_browser_variable_wins_under_wsl(tmp_path):
    proc = _proc(tmp_path, osrelease=WSL2)
    environ = {"BROWSER": "firefox", "WSL_DISTRO_NAME": "Ubuntu"}
    assert context.wsl_browser_command(environ, proc, _which("wslview", "explorer.exe")) is None


def test_plain_linux_keeps_webbrowser(tmp_path):
    proc = _proc(tmp_path, osrelease="6.1.0-26-amd64", version="Linux version 6.1.0-26-amd64")
    assert context.wsl_browser_command({}, proc, _which("wslview", "explorer.exe")) is None


def test_wsl_without_an_opener_falls_back_to_webbrowser(tmp_path):
    proc = _proc(tmp_path, osrelease=WSL2)
    assert context.wsl_browser_command({}, proc, _which()) is None


@pytest.mark.skipif(sys.platform != "linux", reason="the WSL opener is Linux's")
def test_open_browser_under_wsl_runs_wslview_without_waiting(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    seen = tmp_path / "seen-url"
    wslview = bin_dir / "wslview"
    # A slow opener: the login must go on serving its listener while it runs.
    wslview.write_text(
        f'#!/bin/sh\nprintf %s "$1" > {seen}.part && mv {seen}.part {seen}\nsleep 5\n'
    )
    wslview.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("WSL_DISTRO_NAME", "Ubuntu")
    monkeypatch.delenv("BROWSER", raising=False)

    started = time.monotonic()
    assert context._open_browser(URL) is True
    assert time.monotonic() - started < 1.0
    deadline = time.monotonic() + 10
    while not seen.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert seen.read_text() == URL  # one argument, untouched by any shell


# --- inter-process locks ---------------------------------------------------------


def test_a_lock_taken_in_one_thread_is_released_in_another(tmp_path):
    from tokenctl.fsutil import FileLock

    path = tmp_path / "locks" / "token-1.lock"
    holder, other = FileLock(path), FileLock(path)
    holder.acquire()
    releaser = threading.Thread(target=holder.release)
    releaser.start()
    releaser.join()
    assert other.try_acquire() is True  # released for everyone, not only for that thread
    assert holder.try_acquire() is False  # and now held by `other`, whatever the thread
    other.release()


def test_a_waiting_acquire_gets_the_lock_once_it_is_released(tmp_path):
    from tokenctl.fsutil import FileLock

    path = tmp_path / "t.lock"
    holder, waiter = FileLock(path), FileLock(path)
    holder.acquire()
    got = threading.Event()

    def wait_for_it() -> None:
        waiter.acquire()
        got.set()

    thread = threading.Thread(target=wait_for_it, daemon=True)
    thread.start()
    assert not got.wait(0.3)  # held: the waiter waits
    holder.release()
    assert got.wait(5)
    waiter.release()
    thread.join(5)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX modes")
def test_lock_files_stay_private_and_in_place(tmp_path):
    from tokenctl.fsutil import FileLock

    path = tmp_path / "data" / "locks" / "token-7.lock"
    lock = FileLock(path)
    lock.acquire()
    lock.release()
    assert path.exists()  # waiters of other processes share one file
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


# --- files on Windows --------------------------------------------------------------


def test_an_atomic_write_works_where_a_directory_cannot_be_opened(tmp_path, monkeypatch):
    from tokenctl.fsutil import write_private_atomic

    real_open = os.open

    def windows_open(path, flags, *args, **kwargs):  # type: ignore[no-untyped-def]
        if Path(path).is_dir():
            raise PermissionError(13, "Permission denied", str(path))  # as Windows does
        return real_open(path, flags, *args, **kwargs)

    target = tmp_path / "definitions.toml"
    target.write_bytes(b"old")
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setattr(os, "open", windows_open)
    write_private_atomic(target, b"new")
    monkeypatch.undo()
    assert target.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["definitions.toml"]  # no temporary left


def test_doctor_does_not_judge_windows_files_by_their_mode_bits(tmp_path, monkeypatch):
    from tokenctl.services.doctor import _permissions

    # On Windows os.stat reports 0o666 for every writable file, whoever may read it.
    loose = tmp_path / "config.toml"
    loose.write_text("")
    loose.chmod(0o666)
    assert _permissions([loose]).ok is False  # POSIX: readable by others

    monkeypatch.setattr(sys, "platform", "win32")
    check = _permissions([loose])
    monkeypatch.undo()
    assert check.ok is True
    assert "not checked" in check.detail and "docs/files.md" in check.detail
