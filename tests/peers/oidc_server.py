"""Start the real OpenID Connect provider (``tests/peers/oidc``) for a test.

The provider is the OpenID Certified ``oidc-provider`` npm package run by a
small Node server (``tests/peers/oidc/server.mjs``).  This module starts it on
a free loopback port and drives its pages like a browser would, using only the
standard library (``urllib`` + ``http.cookiejar``), so that tests do not depend
on the HTTP client that tokenctl itself uses.

Typical use::

    srv = start_oidc_provider({"rotate_refresh_token": False}, tmp_path)
    try:
        url = srv.browser_login(authorization_url, "alice", ALICE_PASSWORD)
        ...
    finally:
        srv.stop()

``OidcServer`` is also a context manager.  See ``tests/peers/oidc/README.md``
for the config format, the default clients and users, and the admin endpoints.
"""

from __future__ import annotations

import contextlib
import html.parser
import http.cookiejar
import json
import os
import re
import selectors
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OIDC_DIR = Path(__file__).resolve().parent / "oidc"
SERVER_SCRIPT = OIDC_DIR / "server.mjs"

# Defaults built into server.mjs (used when the config does not override them).
PUBLIC_CLIENT_ID = "tokenctl-public"
BASIC_CLIENT_ID = "tokenctl-basic"
BASIC_CLIENT_SECRET = "tokenctl-basic-secret"
POST_CLIENT_ID = "tokenctl-post"
POST_CLIENT_SECRET = "tokenctl-post-secret"
DEFAULT_USERS: dict[str, dict[str, Any]] = {
    "alice": {"password": "alice-password", "email": "alice@example.test", "name": "Alice Example"},
    "bob": {"password": "bob-password", "email": "bob@example.test", "name": "Bob Example"},
}
CUSTOM_SCOPES = ("invoices:read", "invoices:write", "masterdata:write")
LOOPBACK_REDIRECT_URI = "http://127.0.0.1/callback"  # any port is accepted
DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"

_MAX_STEPS = 25


class OidcPeerError(RuntimeError):
    """The provider could not be started, or a page flow went wrong."""


class LoginFailedError(OidcPeerError):
    """The login page came back with an error (wrong username or password)."""


# --------------------------------------------------------------------------
# install / locate


def _pinned_version() -> str:
    pkg = json.loads((OIDC_DIR / "package.json").read_text())
    return str(pkg["dependencies"]["oidc-provider"])


def _installed_version() -> str | None:
    p = OIDC_DIR / "node_modules" / "oidc-provider" / "package.json"
    try:
        return str(json.loads(p.read_text())["version"])
    except (OSError, ValueError, KeyError):
        return None


def is_installed() -> bool:
    return _installed_version() == _pinned_version()


def install_oidc_provider(*, force: bool = False, timeout: float = 300.0) -> None:
    """Run ``npm ci`` in tests/peers/oidc unless the pinned version is there."""
    if is_installed() and not force:
        return
    npm = shutil.which("npm")
    if npm is None:
        raise OidcPeerError("npm is not installed; cannot install tests/peers/oidc")
    proc = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund"],
        cwd=OIDC_DIR,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0 or not is_installed():
        raise OidcPeerError(
            f"npm ci in {OIDC_DIR} failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )


def node_binary() -> str:
    """The Node to run the server with: the npm ``node@22`` package if present."""
    local = OIDC_DIR / "node_modules" / ".bin" / "node"
    if local.exists():
        return str(local)
    found = shutil.which("node")
    if found is None:
        raise OidcPeerError("no node binary (run `npm ci` in tests/peers/oidc)")
    return found


# --------------------------------------------------------------------------
# a minimal HTML form reader


@dataclass
class _Form:
    id: str | None
    action: str
    method: str
    # (name, value, type, checked)
    inputs: list[tuple[str, str, str, bool]] = field(default_factory=list)
    # (id, name, value)
    buttons: list[tuple[str | None, str | None, str | None]] = field(default_factory=list)


_VOID = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}
)


class _PageParser(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[_Form] = []
        self.page_id: str | None = None
        self.title = ""
        self.errors: list[str] = []
        self._current: _Form | None = None
        self._by_id: dict[str, _Form] = {}
        self._orphans: list[tuple[str, dict[str, str | None]]] = []
        self._in_title = False
        self._error_depth = 0
        self._error_text: list[str] = []

    def handle_starttag(self, tag: str, attrs_list: list[tuple[str, str | None]]) -> None:
        attrs = dict(attrs_list)
        if tag == "body":
            self.page_id = attrs.get("data-page")
        elif tag == "title":
            self._in_title = True
        elif tag == "form":
            form = _Form(
                id=attrs.get("id"),
                action=attrs.get("action") or "",
                method=(attrs.get("method") or "get").lower(),
            )
            self.forms.append(form)
            if form.id:
                self._by_id[form.id] = form
            self._current = form
        elif tag in ("input", "button"):
            owner_id = attrs.get("form")
            if owner_id:
                self._orphans.append((tag, attrs))
            elif self._current is not None:
                self._add(self._current, tag, attrs)
        if tag in _VOID:
            return
        if (
            self._error_depth
            or attrs.get("id") == "error"
            or "error" in (attrs.get("class") or "").split()
        ):
            self._error_depth += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in _VOID:
            return
        if tag == "form":
            self._current = None
        elif tag == "title":
            self._in_title = False
        if self._error_depth:
            self._error_depth -= 1
            if self._error_depth == 0:
                self.errors.append("".join(self._error_text).strip())
                self._error_text = []

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        if self._error_depth:
            self._error_text.append(data)

    @staticmethod
    def _add(form: _Form, tag: str, attrs: dict[str, str | None]) -> None:
        typ = (attrs.get("type") or ("submit" if tag == "button" else "text")).lower()
        if typ == "submit" or typ == "image":
            form.buttons.append((attrs.get("id"), attrs.get("name"), attrs.get("value")))
        elif attrs.get("name"):
            form.inputs.append(
                (
                    str(attrs["name"]),
                    attrs.get("value") or ("on" if typ == "checkbox" else ""),
                    typ,
                    "checked" in attrs,
                )
            )

    def close(self) -> None:
        super().close()
        for tag, attrs in self._orphans:
            form = self._by_id.get(attrs.get("form") or "")
            if form is not None:
                self._add(form, tag, attrs)


def _parse(body: str) -> _PageParser:
    p = _PageParser()
    p.feed(body)
    p.close()
    return p


# --------------------------------------------------------------------------
# the browser


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        return None


@dataclass
class _Response:
    url: str
    status: int
    headers: Any
    body: str


class _Browser:
    """urllib + a cookie jar; redirects are followed by hand."""

    def __init__(self, jar: http.cookiejar.CookieJar | None = None) -> None:
        self.jar = jar if jar is not None else http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.jar), _NoRedirect()
        )

    def request(self, url: str, data: list[tuple[str, str]] | None = None) -> _Response:
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        req = urllib.request.Request(url, data=body, method="POST" if body is not None else "GET")
        if body is not None:
            req.add_header("Content-Type", "application/x-www-form-urlencoded")
        req.add_header("Accept", "text/html")
        try:
            with self.opener.open(req, timeout=15) as resp:
                return _Response(
                    url, resp.status, resp.headers, resp.read().decode("utf-8", "replace")
                )
        except urllib.error.HTTPError as err:
            text = err.read().decode("utf-8", "replace") if err.fp is not None else ""
            return _Response(url, err.code, err.headers, text)


def _origin(url: str) -> tuple[str, str]:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme, parts.netloc.lower()


def _form_data(
    form: _Form,
    overrides: Mapping[str, str] | None = None,
    *,
    button_id: str | None = None,
    checked: Iterable[str] | None = None,
) -> list[tuple[str, str]]:
    data: list[tuple[str, str]] = []
    overrides = dict(overrides or {})
    wanted = set(checked) if checked is not None else None
    for name, value, typ, is_checked in form.inputs:
        if typ in ("checkbox", "radio"):
            on = (value in wanted) if wanted is not None else is_checked
            if on:
                data.append((name, value))
        elif name in overrides:
            data.append((name, overrides.pop(name)))
        else:
            data.append((name, value))
    data.extend(overrides.items())
    if form.buttons:
        chosen = None
        if button_id is not None:
            chosen = next((b for b in form.buttons if b[0] == button_id), None)
            if chosen is None:
                raise OidcPeerError(f"no button #{button_id} in form {form.id!r}")
        else:
            chosen = form.buttons[0]
        if chosen[1]:
            data.append((chosen[1], chosen[2] or ""))
    return data


def _find_form(page: _PageParser, form_id: str) -> _Form:
    for f in page.forms:
        if f.id == form_id:
            return f
    raise OidcPeerError(f"page {page.page_id!r} has no form #{form_id}")


# --------------------------------------------------------------------------
# the server handle


class OidcServer:
    """A running provider.  ``issuer`` is ``http://127.0.0.1:<port>``."""

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        issuer: str,
        port: int,
        log_path: Path,
        config_path: Path,
        config: dict[str, Any],
    ) -> None:
        self.process = process
        self.issuer = issuer
        self.port = port
        self.log_path = log_path
        self.config_path = config_path
        self.config = config

    # ---- lifecycle

    def __enter__(self) -> OidcServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 5.0) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()

    def logs(self) -> str:
        """Everything the server wrote to stderr so far (access log, errors)."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    # ---- URLs

    @property
    def discovery_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    def metadata(self) -> dict[str, Any]:
        return dict(self._json("GET", "/.well-known/openid-configuration"))

    # ---- admin endpoints

    def _json(self, method: str, path: str, data: Mapping[str, str] | None = None) -> Any:
        body = urllib.parse.urlencode(dict(data)).encode() if data is not None else None
        req = urllib.request.Request(self.issuer + path, data=body, method=method)
        if body is not None:
            req.add_header("Content-Type", "application/x-www-form-urlencoded")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as err:
            raise OidcPeerError(f"{method} {path}: HTTP {err.code}: {err.read()!r}") from err

    def revoke_user_grants(self, user: str, client_id: str | None = None) -> list[str]:
        """Revoke every grant (and so every token) of ``user`` at the provider.

        Without ``client_id`` the user's browser sessions end too."""
        data = {"user": user}
        if client_id:
            data["client_id"] = client_id
        return list(self._json("POST", "/__test/revoke", data)["revoked"])

    def revoke_grant(self, grant_id: str) -> list[str]:
        return list(self._json("POST", "/__test/revoke", {"grant_id": grant_id})["revoked"])

    def grants(self, user: str | None = None) -> list[dict[str, Any]]:
        path = "/__test/grants" + (f"?user={urllib.parse.quote(user)}" if user else "")
        return list(self._json("GET", path)["grants"])

    def reject_scope(
        self, scope: str, *, user: str | None = None, grant_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Take ``scope`` away from existing grants: later refreshes lack it."""
        data = {"scope": scope}
        if user:
            data["user"] = user
        if grant_id:
            data["grant_id"] = grant_id
        return list(self._json("POST", "/__test/reject-scope", data)["grants"])

    def stats(self) -> dict[str, Any]:
        """Counters: grant_success/grant_error per grant type, refresh_served, logins, ..."""
        return dict(self._json("GET", "/__test/stats"))

    def reset_stats(self) -> None:
        self._json("POST", "/__test/stats/reset", {})

    # ---- page flows

    def browser_login(
        self,
        authorization_url: str,
        username: str,
        password: str,
        approve: bool = True,
        follow_to_callback: bool = True,
        *,
        grant_scopes: Iterable[str] | None = None,
        jar: http.cookiejar.CookieJar | None = None,
    ) -> str:
        """Play the user's browser from ``authorization_url`` to the client.

        Follows redirects with a cookie jar, fills the login form and then the
        consent form (Approve, or Deny when ``approve`` is false).  With
        ``grant_scopes`` only those of the offered scopes are ticked on the
        consent page (``openid`` is always granted).  Returns the URL the
        provider finally redirects to (the client's redirect_uri with
        ``code``/``state``/``iss`` or ``error``).  With ``follow_to_callback``
        that URL is also fetched (as the browser would; the response is not
        checked) before it is returned.  Pass the same ``jar`` to keep the
        provider session between calls (the second login then skips the
        password).  Raises LoginFailedError on a wrong password.
        """
        browser = _Browser(jar)
        final = self._drive(
            browser,
            authorization_url,
            username=username,
            password=password,
            approve=approve,
            grant_scopes=grant_scopes,
        )
        if follow_to_callback:
            try:
                with urllib.request.urlopen(final, timeout=15) as resp:
                    resp.read()
            except urllib.error.HTTPError:
                pass  # the client answered; its status is not our business
            except (urllib.error.URLError, OSError) as err:
                raise OidcPeerError(
                    f"nothing answered at the client's redirect {final}: {err}"
                ) from err
        return final

    def device_approve(
        self,
        user_code: str,
        username: str,
        password: str,
        approve: bool = True,
        *,
        grant_scopes: Iterable[str] | None = None,
        jar: http.cookiejar.CookieJar | None = None,
    ) -> str:
        """Enter ``user_code`` on the device page, sign in and consent.

        Returns the page id of the last page: "device-success", or with
        ``approve=False`` (Deny on the consent page) "device-aborted"; the
        device's next poll then gets ``access_denied``."""
        browser = _Browser(jar)
        url = f"{self.issuer}/device?user_code={urllib.parse.quote(user_code)}"
        return self._drive(
            browser,
            url,
            username=username,
            password=password,
            approve=approve,
            grant_scopes=grant_scopes,
            device=True,
        )

    def _drive(
        self,
        browser: _Browser,
        url: str,
        *,
        username: str,
        password: str,
        approve: bool,
        grant_scopes: Iterable[str] | None,
        device: bool = False,
    ) -> str:
        issuer_origin = _origin(self.issuer)
        data: list[tuple[str, str]] | None = None
        logged_in = False
        trail: list[str] = []
        for _ in range(_MAX_STEPS):
            resp = browser.request(url, data)
            trail.append(f"{'POST' if data is not None else 'GET'} {url} -> {resp.status}")
            data = None
            if resp.status in (301, 302, 303, 307, 308):
                location = urllib.parse.urljoin(url, str(resp.headers.get("Location", "")))
                if _origin(location) != issuer_origin:
                    if device:
                        raise OidcPeerError(f"device flow left the provider: {location}")
                    return location
                url = location
                continue
            page = _parse(resp.body)
            pid = page.page_id
            if pid == "login":
                if logged_in:
                    why = "; ".join(page.errors) or "login page shown again"
                    raise LoginFailedError(f"login as {username!r} failed: {why}")
                form = _find_form(page, "login-form")
                url = urllib.parse.urljoin(url, form.action)
                data = _form_data(form, {"username": username, "password": password})
                logged_in = True
            elif pid == "consent":
                form = _find_form(page, "consent-form")
                url = urllib.parse.urljoin(url, form.action)
                data = _form_data(
                    form,
                    button_id="approve" if approve else "deny",
                    checked=grant_scopes,
                )
            elif pid == "device-input":
                if page.errors:
                    raise OidcPeerError(f"device code rejected: {'; '.join(page.errors)}")
                form = page.forms[0]
                url = urllib.parse.urljoin(url, form.action)
                data = _form_data(form)
            elif pid == "device-confirm":
                form = page.forms[0]
                url = urllib.parse.urljoin(url, form.action)
                data = _form_data(form, button_id="device-confirm")
            elif pid in ("device-success", "device-aborted"):
                return pid
            elif pid == "error" or resp.status >= 400:
                raise OidcPeerError(
                    f"provider error page (HTTP {resp.status}): {_error_text(resp.body)}\n"
                    + "\n".join(trail)
                )
            elif len(page.forms) == 1 and page.forms[0].method == "post" and not page.page_id:
                # oidc-provider's self-submitting form (device user_code link,
                # form_post response mode)
                form = page.forms[0]
                target = urllib.parse.urljoin(url, form.action)
                if _origin(target) != issuer_origin:
                    raise OidcPeerError(f"form_post to the client is not supported: {target}")
                url = target
                data = _form_data(form)
            else:
                raise OidcPeerError(
                    f"unexpected page {page.title!r} (HTTP {resp.status})\n" + "\n".join(trail)
                )
        raise OidcPeerError("too many steps:\n" + "\n".join(trail))


def _error_text(body: str) -> str:
    p = _parse(body)
    text = "; ".join(e for e in p.errors if e)
    if text:
        return text
    # renderError's <dl>: error / error_description
    items = re.findall(r'<dd id="([^"]+)">([^<]*)</dd>', body)
    return ", ".join(f"{k}={v}" for k, v in items) or body[:300]


# --------------------------------------------------------------------------
# start


def start_oidc_provider(
    config: Mapping[str, Any] | None = None,
    tmp_dir: str | os.PathLike[str] | None = None,
    *,
    timeout: float = 20.0,
    install: bool = False,
) -> OidcServer:
    """Start the provider on a free 127.0.0.1 port and wait until it is ready.

    ``config`` is merged (top-level keys) over the defaults of server.mjs; see
    tests/peers/oidc/README.md.  The config file and the server's stderr log
    (``oidc-server.log``) go to ``tmp_dir`` (a new temporary directory when
    None).  With ``install`` ``npm ci`` runs first when needed.
    """
    if install:
        install_oidc_provider()
    elif not is_installed():
        raise OidcPeerError(
            f"oidc-provider {_pinned_version()} is not installed in {OIDC_DIR}: "
            "run `npm ci --no-audit --no-fund` there"
        )
    work = Path(tmp_dir) if tmp_dir is not None else Path(tempfile.mkdtemp(prefix="oidc-peer-"))
    work.mkdir(parents=True, exist_ok=True)
    cfg = dict(config or {})
    config_path = work / "oidc-config.json"
    config_path.write_text(json.dumps(cfg, indent=2))
    log_path = work / "oidc-server.log"
    log_file = open(log_path, "ab")  # noqa: SIM115 - handed to the child
    try:
        proc = subprocess.Popen(
            [
                node_binary(),
                str(SERVER_SCRIPT),
                "--config",
                str(config_path),
                "--exit-on-stdin-close",
            ],
            cwd=OIDC_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log_file,
            env={**os.environ, "NODE_ENV": "test"},
        )
    finally:
        log_file.close()
    assert proc.stdout is not None

    def fail(why: str) -> OidcPeerError:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        try:
            log = log_path.read_text(errors="replace")
        except OSError:
            log = ""
        return OidcPeerError(f"oidc provider {why}; its stderr:\n{log}")

    deadline = time.monotonic() + timeout
    buf = b""
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    try:
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise fail(f"did not get ready within {timeout:.0f}s")
            if not sel.select(left):
                continue
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                proc.wait(5)
                raise fail(f"exited with code {proc.returncode} before it was ready")
            buf += chunk
    finally:
        sel.close()
    line = buf.split(b"\n", 1)[0]
    try:
        ready = json.loads(line)
        issuer = str(ready["issuer"])
        port = int(ready["port"])
    except (ValueError, KeyError) as err:
        raise fail(f"printed an unexpected ready line {line!r}") from err
    return OidcServer(proc, issuer, port, log_path, config_path, cfg)
