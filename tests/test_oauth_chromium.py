"""End to end: tokenctl as a process, a real browser, a real provider, a real keyring.

``tokenctl add`` opens the login with Python's ``webbrowser``, which honours ``BROWSER``;
``BROWSER`` is ``tests/peers/browser_driver.py``, which detaches like a real browser
launcher and signs in with headless Chromium at the oidc-provider peer. The driver saves
the page tokenctl's loopback listener answers with, and a screenshot of it.
"""

from __future__ import annotations

import json
import os
import shlex
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CHROMIUM
from tests.oauth_support import definition_toml, query_of
from tests.proc import Proc, tokenctl

DRIVER = Path(__file__).resolve().parent / "peers" / "browser_driver.py"

DRIVER_TIMEOUT = 20  # seconds for the whole browser session
LOGIN_TIMEOUT = 25  # tokenctl --timeout: a driver failure must not make it wait 300 s


def browser_env(base: dict[str, str], out: Path, user: str, password: str) -> dict[str, str]:
    """``base`` plus the variables that make ``webbrowser`` run the driver."""
    env = dict(base)
    env.pop("TOKENCTL_DEBUG", None)
    # Should the driver fail, webbrowser tries the next browser: never a real one.
    for name in ("DISPLAY", "WAYLAND_DISPLAY"):
        env.pop(name, None)
    env.update(
        BROWSER=f"{shlex.quote(sys.executable)} {shlex.quote(str(DRIVER))} %s",
        TOKENCTL_TEST_BROWSER_OUT=str(out),
        TOKENCTL_TEST_BROWSER_TIMEOUT=str(DRIVER_TIMEOUT),
        TOKENCTL_TEST_CHROMIUM=CHROMIUM,
        TOKENCTL_TEST_USER=user,
        TOKENCTL_TEST_PASSWORD=password,
    )
    return env


def wait_for_driver(out: Path, timeout: float = DRIVER_TIMEOUT + 10) -> dict[str, Any]:
    """The driver's result.json, written once it has closed Chromium."""
    result = out / "result.json"
    end = time.monotonic() + timeout
    while not result.exists():
        if time.monotonic() > end:
            log = out / "driver.log"
            pytest.fail(
                "the browser driver did not finish; its log:\n"
                + (log.read_text() if log.exists() else "(none)")
            )
        time.sleep(0.05)
    data: dict[str, Any] = json.loads(result.read_text())
    return data


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def processes_mentioning(text: str) -> list[int]:
    """Pids whose command line contains ``text`` (a leftover Chromium names its profile)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if text.encode() in cmdline:
                found.append(int(entry.name))
    return found


def define_acme_books(tmp_path: Path, home: Path, env: dict[str, str], issuer: str) -> None:
    """``definitions add --file`` of a definition for the provider's public client."""
    source = tmp_path / "acme-books.toml"
    source.write_text(definition_toml("acme-books", issuer, "tokenctl-public"))
    defined = tokenctl("definitions", "add", "--file", str(source), home=home, env=env)
    assert defined.exit_code == 0, defined.stderr


def with_browser(
    *args: str, home: Path, env: dict[str, str], out: Path
) -> tuple[Proc, dict[str, Any], str]:
    """Run a tokenctl command whose login the driver does; returns it, result.json, the log."""
    proc = tokenctl(
        *args, "--yes", "--timeout", str(LOGIN_TIMEOUT),
        home=home, env=env, timeout=LOGIN_TIMEOUT + 15,
    )  # fmt: skip
    driver = wait_for_driver(out)
    log = (out / "driver.log").read_text()
    assert driver["status"] == "ok", f"{proc.stderr}\n--- driver.log\n{log}"
    return proc, driver, log


@pytest.mark.peers
def test_add_signs_in_with_headless_chromium(real_keyring, oidc, chromium, tmp_path):
    home = tmp_path / "home"
    out = tmp_path / "browser"
    env = browser_env(real_keyring.child_env(), out, "alice", "alice-password")
    define_acme_books(tmp_path, home, env, oidc.issuer)

    added, driver, log = with_browser(
        "add", "acme", "--definition", "acme-books", home=home, env=env, out=out
    )
    assert added.exit_code == 0, f"{added.stderr}\n--- driver.log\n{log}"
    assert driver["final"] == "ok", log

    # What the terminal said: the warning first, then the URL that was opened.
    stderr = added.stderr
    assert stderr.index("Log out of Acme Books") < stderr.index("Opening the browser")
    assert "access to all administrations" in stderr
    listening = stderr.split("Listening for the login on ", 1)[1].split("\n", 1)[0]
    url = next(line for line in stderr.splitlines() if line.startswith(oidc.issuer + "/auth?"))
    params = query_of(url)
    assert params["redirect_uri"] == listening
    assert params["code_challenge_method"] == "S256" and params["prompt"] == "login"
    assert params["state"] and params["nonce"]

    # What the browser got: tokenctl's success page naming the account.
    html = (out / "page.html").read_text()
    assert 'data-result="ok"' in html
    assert "token retrieved" in html
    assert '<strong id="account">alice@example.test</strong>' in html
    assert "<code>acme</code>" in html
    assert "alice@example.test" in (out / "page.txt").read_text()
    assert png_size(out / "page.png") == (800, 450)

    # The driver cleaned up after itself: no Chromium left, no profile left.
    assert driver["leftover_pids"] == []
    assert driver["profile_removed"] is True
    assert not Path(driver["profile"]).exists()
    assert processes_mentioning(driver["profile"]) == []

    # The inventory and the keyring, each read by its own reader.
    shown = tokenctl("show", "acme", "--json", home=home, env=env)
    assert shown.exit_code == 0, shown.stderr
    token = shown.json()["token"]
    assert token["account"] == "alice@example.test"
    assert token["status"] == "valid"
    assert token["has_refresh_token"] is True
    assert token["attributes"]["issuer"] == oidc.issuer
    key_entry = token["secret"]["key_entry"]
    assert real_keyring.lookup("tokenctl", key_entry) is not None
    assert [item.attributes["username"] for item in real_keyring.items("tokenctl")] == [key_entry]
    from tests.fakes import stored_secrets
    from tokenctl.secrets.keyring_store import OsKeyring

    keyring = OsKeyring()
    sealed = stored_secrets(home, "acme", keyring)
    keyring.close()
    assert sealed is not None and sealed.access_token and sealed.refresh_token
    stored = {"access_token": sealed.access_token, "refresh_token": sealed.refresh_token}

    # No secret value anywhere but in the keyring: not in tokenctl's files or output,
    # and not in anything the browser saw or logged.
    secrets = [value for value in stored.values() if isinstance(value, str) and len(value) > 10]
    assert len(secrets) >= 2
    texts = {
        "add stdout": added.stdout,
        "add stderr": added.stderr,
        "show stdout": shown.stdout,
        "show stderr": shown.stderr,
    }
    files = [p for p in (*home.rglob("*"), *out.rglob("*")) if p.is_file()]
    assert any(p.name.startswith("inventory") for p in files), "no inventory file found"
    for secret in secrets:
        for where, text in texts.items():
            assert secret not in text, f"a secret value appears in {where}"
        for path in files:
            assert secret.encode() not in path.read_bytes(), f"a secret value appears in {path}"


@pytest.mark.peers
def test_renew_as_another_account_shows_the_refusal_in_the_browser(
    real_keyring, oidc, chromium, tmp_path
):
    home = tmp_path / "home"
    alice = browser_env(real_keyring.child_env(), tmp_path / "b1", "alice", "alice-password")
    define_acme_books(tmp_path, home, alice, oidc.issuer)
    added, _, log = with_browser(
        "add", "acme", "--definition", "acme-books", home=home, env=alice, out=tmp_path / "b1"
    )
    assert added.exit_code == 0, f"{added.stderr}\n--- driver.log\n{log}"

    bob = browser_env(real_keyring.child_env(), tmp_path / "b2", "bob", "bob-password")
    renewed, driver, log = with_browser(
        "renew", "acme", "--login", home=home, env=bob, out=tmp_path / "b2"
    )
    assert renewed.exit_code == 5, renewed.stderr
    assert "signed in as 'bob@example.test'" in renewed.stderr
    shown = tokenctl("show", "acme", "--json", home=home, env=alice).json()["token"]
    assert shown["account"] == "alice@example.test"
    # What the person at the browser is told must agree with the terminal.
    page = (tmp_path / "b2" / "page.html").read_text()
    assert driver["final"] == "fail", page
    assert "token retrieved" not in page


def test_driver_detaches_at_once_and_reports_errors_in_its_log(tmp_path):
    """The launcher returns before the browser work, holding none of its caller's pipes."""
    out = tmp_path / "browser"
    env = browser_env(dict(os.environ), out, "alice", "alice-password")
    env["TOKENCTL_TEST_CHROMIUM"] = str(tmp_path / "no-such-chromium")
    started = time.monotonic()
    launcher = subprocess.Popen(
        [sys.executable, str(DRIVER), "http://127.0.0.1:9/auth?state=s"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # communicate() returns only when every holder of the pipes has closed them.
    stdout, stderr = launcher.communicate(timeout=10)
    assert launcher.returncode == 0, stderr
    assert stdout == "" and stderr == ""
    assert time.monotonic() - started < 5
    driver = wait_for_driver(out, timeout=10)
    assert driver["status"] == "error"
    assert "cannot start" in driver["error"] and "no-such-chromium" in driver["error"]
    log = (out / "driver.log").read_text()
    assert "ERROR" in log and "state=s" not in log  # the query is never logged
    assert driver["driver_pid"] != launcher.pid  # it ran in the detached grandchild


def test_driver_without_out_dir_fails_in_the_foreground(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TOKENCTL_TEST_BROWSER_OUT"}
    launched = subprocess.run(
        [sys.executable, str(DRIVER), "http://127.0.0.1:9/"],
        env=env, capture_output=True, text=True, timeout=10, check=False,
    )  # fmt: skip
    assert launched.returncode == 2
    assert "TOKENCTL_TEST_BROWSER_OUT" in launched.stderr
