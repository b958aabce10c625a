#!/usr/bin/env python3
"""A ``BROWSER`` launcher that plays the user in a real headless Chromium.

Use it the way a person's browser is used::

    BROWSER="python3 tests/peers/browser_driver.py %s"   # or the script's path alone
    TOKENCTL_TEST_BROWSER_OUT=/tmp/out TOKENCTL_TEST_USER=alice \\
    TOKENCTL_TEST_PASSWORD=alice-password  tokenctl add acme --definition acme-books --yes

Python's :mod:`webbrowser` runs ``BROWSER`` (``%s`` is replaced by the URL; without
``%s`` the URL is appended as the only argument) and **waits for it to exit**. Like a
real launcher, this script therefore detaches at once (double fork, new session, stdio
on ``/dev/null``) and exits 0; the detached process then

1. starts ``/usr/lib/chromium/chromium --headless ... --remote-debugging-pipe`` with a
   fresh ``--user-data-dir`` and talks the DevTools protocol over fds 3/4 (NUL-separated
   JSON, no websocket and no extra package needed; see ``oidc/chromium_smoke.py``);
2. opens the URL and, whatever order the pages come in, fills the oidc peer's login form
   (``#username``/``#password``/``#login-submit``), answers its consent page (``#approve``,
   or ``#deny`` with ``TOKENCTL_TEST_CONSENT=deny``) and confirms a device code page;
3. waits for the final page: tokenctl's loopback page (``<body data-result=ok|fail>``) or
   the provider's ``device-success`` / ``device-aborted`` page;
4. saves it as ``page.html`` (the DOM), ``page.txt`` (its visible text) and ``page.png``
   (a screenshot) in the out directory;
5. closes Chromium (``Browser.close``, then SIGTERM/SIGKILL to its process group), removes
   the profile, and last of all writes ``result.json`` atomically: a caller waits for that
   file to know the driver is completely done.

Environment:

``TOKENCTL_TEST_BROWSER_OUT``      out directory (required; created if missing)
``TOKENCTL_TEST_USER`` / ``TOKENCTL_TEST_PASSWORD``   the account to sign in with
``TOKENCTL_TEST_CONSENT``          ``approve`` (default) or ``deny``
``TOKENCTL_TEST_BROWSER_TIMEOUT``  seconds for the whole run (default 30)
``TOKENCTL_TEST_BROWSER_SIZE``     viewport ``WIDTHxHEIGHT`` (default 800x450)
``TOKENCTL_TEST_CHROMIUM``         the Chromium binary (default /usr/lib/chromium/chromium)
``TOKENCTL_TEST_CHROMIUM_FLAGS``   extra Chromium flags, shell-quoted (e.g. a host mapping
                                   and the SPKI of a test HTTPS site's certificate)

Progress and errors go to ``driver.log`` in the out directory (never the password, and
never a URL's query: the callback carries the authorization code); Chromium's own output
goes to ``chromium.log``. ``result.json`` has ``status`` (``ok``: a final page was
reached and saved, else ``error``), ``final`` (``ok``/``fail``/the device page id),
``error``, per-step ``timings`` and the pids, so a test can check nothing is left.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import fcntl
import json
import os
import select
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

OUT_ENV = "TOKENCTL_TEST_BROWSER_OUT"
USER_ENV = "TOKENCTL_TEST_USER"
PASSWORD_ENV = "TOKENCTL_TEST_PASSWORD"
CONSENT_ENV = "TOKENCTL_TEST_CONSENT"
TIMEOUT_ENV = "TOKENCTL_TEST_BROWSER_TIMEOUT"
SIZE_ENV = "TOKENCTL_TEST_BROWSER_SIZE"
CHROMIUM_ENV = "TOKENCTL_TEST_CHROMIUM"
EXTRA_FLAGS_ENV = "TOKENCTL_TEST_CHROMIUM_FLAGS"
DEFAULT_CHROMIUM = "/usr/lib/chromium/chromium"
DEFAULT_TIMEOUT = 30.0
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    # Not in a person's browser, but needed for a clean, private test run:
    "--no-default-browser-check",
    "--no-proxy-server",  # only 127.0.0.1 is visited; never go through a proxy
    "--password-store=basic",  # never touch the Secret Service tokenctl is tested against
    "--hide-scrollbars",
    "--mute-audio",
    "--remote-debugging-pipe",
)
FINAL_DEVICE_PAGES = ("device-success", "device-aborted")
_PR_SET_PDEATHSIG = 1

# Evaluated in the page: what is shown now, in one round trip.
_PROBE = """(() => {
  const b = document.body;
  const err = document.querySelector('#error');
  const desc = document.querySelector('#error_description');
  return {
    href: location.href,
    ready: document.readyState,
    page: b ? (b.dataset.page || null) : null,
    result: b ? (b.dataset.result || null) : null,
    acted: window.__tokenctlDriverActed === true,
    error: err ? err.textContent.trim() : null,
    description: desc ? desc.textContent.trim() : null,
  };
})()"""


class DriverError(RuntimeError):
    """The run failed; the message goes to driver.log and result.json."""


class Log:
    """Timestamped lines in driver.log (relative seconds since the launch)."""

    def __init__(self, path: Path, start: float) -> None:
        self._file = path.open("a", encoding="utf-8", buffering=1)
        self._start = start

    def __call__(self, message: str) -> None:
        self._file.write(f"[{time.monotonic() - self._start:7.3f}] {message}\n")

    def close(self) -> None:
        self._file.close()


def _safe_url(url: str) -> str:
    """A URL without its query and fragment (they can carry the code or the state)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}" + ("?…" if parts.query else "")


def _die_with_parent() -> None:
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


class Chromium:
    """Headless Chromium driven over --remote-debugging-pipe."""

    def __init__(self, binary: str, log: Log, out_dir: Path, deadline: float) -> None:
        self._log = log
        self._deadline = deadline
        self._buf = b""
        self._id = 0
        self.session: str | None = None
        self.profile = tempfile.mkdtemp(prefix="tokenctl-chromium-")
        r_in, self._w = os.pipe()  # we write -> chromium reads on fd 3
        self._r, w_out = os.pipe()  # chromium writes on fd 4 -> we read

        def child_setup() -> None:
            # Move both ends out of the way first: either may already be fd 3 or 4, and
            # dup2(fd, fd) would keep its close-on-exec flag.
            high_in = fcntl.fcntl(r_in, fcntl.F_DUPFD_CLOEXEC, 10)
            high_out = fcntl.fcntl(w_out, fcntl.F_DUPFD_CLOEXEC, 10)
            os.dup2(high_in, 3)  # inheritable
            os.dup2(high_out, 4)
            _die_with_parent()

        env = {k: v for k, v in os.environ.items() if k not in _CHROMIUM_SCRUBBED_ENV}
        extra = shlex.split(os.environ.get(EXTRA_FLAGS_ENV, ""))
        try:
            with (out_dir / "chromium.log").open("ab") as chromium_log:
                self.proc = subprocess.Popen(
                    [
                        binary,
                        *CHROMIUM_FLAGS,
                        *extra,
                        f"--user-data-dir={self.profile}",
                        "about:blank",
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=chromium_log,
                    stderr=chromium_log,
                    env=env,
                    close_fds=False,  # fds 3/4 come from child_setup; the rest are CLOEXEC
                    preexec_fn=child_setup,  # the driver is single-threaded
                    start_new_session=True,  # its own process group: killed as a whole
                )
        except OSError as error:
            for fd in (r_in, w_out, self._w, self._r):
                os.close(fd)
            shutil.rmtree(self.profile, ignore_errors=True)
            raise DriverError(f"cannot start {binary}: {error}") from None
        finally:
            with contextlib.suppress(OSError):
                os.close(r_in)
            with contextlib.suppress(OSError):
                os.close(w_out)
        log(f"chromium pid {self.proc.pid}, profile {self.profile}")

    def send(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        session: bool = True,
        timeout: float = 10.0,
    ) -> Any:
        """One DevTools command; its result, or DriverError."""
        self._id += 1
        message: dict[str, Any] = {"id": self._id, "method": method, "params": params or {}}
        if session and self.session:
            message["sessionId"] = self.session
        os.write(self._w, json.dumps(message).encode() + b"\0")
        end = min(time.monotonic() + timeout, self._deadline)
        while True:
            while b"\0" not in self._buf:
                left = end - time.monotonic()
                if left <= 0:
                    raise DriverError(f"no answer from chromium to {method}")
                ready, _, _ = select.select([self._r], [], [], left)
                if not ready:
                    continue
                chunk = os.read(self._r, 1 << 16)
                if not chunk:
                    raise DriverError(
                        f"chromium went away during {method} (exit {self.proc.poll()})"
                    )
                self._buf += chunk
            raw, self._buf = self._buf.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise DriverError(f"{method}: {reply['error'].get('message', reply['error'])}")
                return reply.get("result", {})
            # Anything else is an event we did not subscribe to on purpose: ignore it.

    def open_tab(self, width: int, height: int) -> None:
        target = self.send("Target.createTarget", {"url": "about:blank"}, session=False)
        self.session = self.send(
            "Target.attachToTarget",
            {"targetId": target["targetId"], "flatten": True},
            session=False,
        )["sessionId"]
        self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )

    def evaluate(self, expression: str) -> Any:
        result = self.send(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True}, timeout=5.0
        )
        if "exceptionDetails" in result:
            raise DriverError(f"script failed: {result['exceptionDetails'].get('text')}")
        return result.get("result", {}).get("value")

    def probe(self) -> dict[str, Any] | None:
        """What the tab shows, or None while a navigation makes that unanswerable."""
        try:
            value = self.evaluate(_PROBE)
        except DriverError as error:
            if "went away" in str(error) or "no answer" in str(error):
                raise
            return None
        return value if isinstance(value, dict) else None

    def close(self) -> list[int]:
        """Quit Chromium and remove its profile; returns pids still alive (should be [])."""
        if self.proc.poll() is None:
            with contextlib.suppress(OSError, DriverError, ValueError):
                self._deadline = time.monotonic() + 3
                self.send("Browser.close", session=False, timeout=3)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(5)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if not _group_alive(self.proc.pid):
                break
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, sig)
            end = time.monotonic() + 3
            while _group_alive(self.proc.pid) and time.monotonic() < end:
                time.sleep(0.05)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(3)
        for fd in (self._w, self._r):
            with contextlib.suppress(OSError):
                os.close(fd)
        for _ in range(3):  # a dying child may still write a file into the profile
            shutil.rmtree(self.profile, ignore_errors=True)
            if not os.path.exists(self.profile):
                break
            time.sleep(0.1)
        return _group_members(self.proc.pid)


_CHROMIUM_SCRUBBED_ENV = frozenset(
    # Chromium must not find the test's private Secret Service (or a real session bus).
    {
        "DBUS_SESSION_BUS_ADDRESS",
        "GNOME_KEYRING_CONTROL",
        "DISPLAY",
        "WAYLAND_DISPLAY",
        USER_ENV,
        PASSWORD_ENV,
    }
)


def _group_members(pgid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # fields: state ppid pgrp ...; zombies are reaped by init, not alive.
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def _group_alive(pgid: int) -> bool:
    return bool(_group_members(pgid))


def _write_json_atomically(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def drive(url: str, out_dir: Path, log: Log, result: dict[str, Any], start: float) -> None:
    """Run the whole login in Chromium; fills ``result``; raises DriverError on failure."""
    timeout = float(os.environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT))
    deadline = start + timeout
    width, height = (int(n) for n in os.environ.get(SIZE_ENV, "800x450").lower().split("x"))
    user = os.environ.get(USER_ENV, "")
    password = os.environ.get(PASSWORD_ENV, "")
    consent = os.environ.get(CONSENT_ENV, "approve")
    if consent not in ("approve", "deny"):
        raise DriverError(f"{CONSENT_ENV} must be approve or deny, not {consent!r}")
    binary = os.environ.get(CHROMIUM_ENV, DEFAULT_CHROMIUM)
    timings: dict[str, float] = result["timings"]

    def mark(step: str) -> None:
        timings[step] = round(time.monotonic() - start, 3)
        log(f"step {step}")

    log(f"opening {_safe_url(url)} as user {user!r}, consent={consent}, timeout {timeout:g} s")
    browser = Chromium(binary, log, out_dir, deadline)
    result["chromium_pid"] = browser.proc.pid
    result["profile"] = browser.profile
    try:
        browser.open_tab(width, height)
        mark("chromium_ready")
        browser.send("Page.navigate", {"url": url})
        actions = 0
        last_seen = None
        while True:
            if time.monotonic() > deadline:
                raise DriverError(f"no final page within {timeout:g} s; last page: {last_seen}")
            if browser.proc.poll() is not None:
                raise DriverError(f"chromium exited ({browser.proc.returncode})")
            state = browser.probe()
            if not state or state.get("ready") != "complete":
                time.sleep(0.05)
                continue
            seen = (_safe_url(state["href"]), state.get("page") or state.get("result"))
            if seen != last_seen:
                log(f"at {seen[0]} (page {seen[1]})")
                last_seen = seen
            if state.get("result") or state.get("page") in FINAL_DEVICE_PAGES:
                result["final"] = state.get("result") or state.get("page")
                mark("final_page")
                break
            page = state.get("page")
            if page == "error":
                raise DriverError(
                    f"the provider showed an error page: {state.get('error')}: "
                    f"{state.get('description')}"
                )
            if state.get("acted"):  # our click has not navigated away yet
                time.sleep(0.05)
                continue
            if page == "login" and state.get("error"):
                raise DriverError(f"the provider refused the login: {state['error']}")
            script = _action_for(page, user, password, consent)
            if script is None:
                time.sleep(0.05)
                continue
            actions += 1
            if actions > 10:
                raise DriverError(f"too many pages without reaching the end (at {seen})")
            browser.evaluate("window.__tokenctlDriverActed = true;" + script)
            mark(f"{page}_submitted")
        save_page(browser, out_dir, result)
        mark("saved")
    finally:
        leftover = browser.close()
        result["leftover_pids"] = leftover
        result["profile_removed"] = not os.path.exists(browser.profile)
        mark("chromium_closed")
        if leftover:
            log(f"WARNING: chromium processes left: {leftover}")


def _action_for(page: str | None, user: str, password: str, consent: str) -> str | None:
    """The script that answers ``page``, or None when there is nothing to do on it."""
    if page == "login":
        if not user:
            raise DriverError(f"the provider asks for a login; set {USER_ENV}/{PASSWORD_ENV}")
        return (
            f"document.querySelector('#username').value = {json.dumps(user)};"
            f"document.querySelector('#password').value = {json.dumps(password)};"
            "document.querySelector('#login-submit').click();"
        )
    if page == "consent":
        return f"document.querySelector('#{consent}').click();"
    if page == "device-confirm":
        button = "#device-confirm" if consent == "approve" else "#device-abort"
        return f"document.querySelector('{button}').click();"
    return None


def save_page(browser: Chromium, out_dir: Path, result: dict[str, Any]) -> None:
    """Write page.html, page.txt and page.png for the page shown now."""
    html = browser.evaluate(
        "(document.doctype ? new XMLSerializer().serializeToString(document.doctype) : '')"
        " + document.documentElement.outerHTML"
    )
    text = browser.evaluate("document.body.innerText")
    shot = browser.send("Page.captureScreenshot", {"format": "png"}, timeout=10)
    (out_dir / "page.html").write_text(html, encoding="utf-8")
    (out_dir / "page.txt").write_text(text, encoding="utf-8")
    (out_dir / "page.png").write_bytes(base64.b64decode(shot["data"]))
    result["title"] = browser.evaluate("document.title")
    result["files"] = {name: str(out_dir / name) for name in ("page.html", "page.txt", "page.png")}


def run_detached(url: str, out_dir: Path, start: float) -> int:
    """The detached part: drive, clean up, and always leave result.json behind."""
    log = Log(out_dir / "driver.log", start)
    result: dict[str, Any] = {
        "status": "error",
        "final": None,
        "error": None,
        "driver_pid": os.getpid(),
        "timings": {},
    }

    def on_alarm(signum: int, frame: Any) -> None:
        raise DriverError("watchdog: the driver itself hung")

    signal.signal(signal.SIGALRM, on_alarm)

    def on_term(signum: int, frame: Any) -> None:
        raise DriverError("terminated by a signal")

    signal.signal(signal.SIGTERM, on_term)
    signal.alarm(int(float(os.environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT))) + 20)
    try:
        drive(url, out_dir, log, result, start)
        result["status"] = "ok"
    except Exception as error:
        result["error"] = f"{type(error).__name__}: {error}"
        log(f"ERROR {result['error']}")
        log(traceback.format_exc().rstrip())
    finally:
        signal.alarm(0)
        result["timings"]["total"] = round(time.monotonic() - start, 3)
        log(f"done: {result['status']} ({result['final']}) in {result['timings']['total']} s")
        log.close()
        _write_json_atomically(out_dir / "result.json", result)
    return 0 if result["status"] == "ok" else 1


def detach() -> bool:
    """Double fork. Returns True in the detached grandchild; the caller's process exits.

    The launcher's parent (webbrowser) waits for this process: the original process
    returns False as soon as the intermediate child has exited, which happens right
    after the grandchild was forked into its own session. The grandchild's stdio goes to
    /dev/null, so it holds none of tokenctl's pipes open (a caller reading tokenctl's
    output to EOF would otherwise wait for the browser).
    """
    sys.stdout.flush()
    sys.stderr.flush()
    child = os.fork()
    if child:
        os.waitpid(child, 0)
        return False
    os.setsid()
    if os.fork():
        os._exit(0)
    os.chdir("/")
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    if null > 2:
        os.close(null)
    os.closerange(3, 1 << 16)  # whatever else the caller let us inherit
    os.umask(0o077)
    return True


def main(argv: list[str]) -> int:
    start = time.monotonic()
    if len(argv) != 2 or not argv[1]:
        print("usage: browser_driver.py URL  (as BROWSER='... %s')", file=sys.stderr)
        return 2
    url = argv[1]
    out = os.environ.get(OUT_ENV)
    if not out:
        print(f"browser_driver: set {OUT_ENV} to an output directory", file=sys.stderr)
        return 2
    out_dir = Path(out).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "result.json").unlink(missing_ok=True)
    if os.environ.get("TOKENCTL_TEST_BROWSER_FOREGROUND") == "1":  # for debugging
        return run_detached(url, out_dir, start)
    if not detach():
        return 0
    code = 1
    try:
        code = run_detached(url, out_dir, start)
    finally:
        os._exit(code)  # the detached process never returns into the launcher's code


if __name__ == "__main__":
    sys.exit(main(sys.argv))
