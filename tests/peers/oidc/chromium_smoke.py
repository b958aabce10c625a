"""Drive the oidc peer's pages with a real headless Chromium (no extra packages).

Run:  python tests/peers/oidc/chromium_smoke.py   (needs Debian's chromium,
authlib + httpx2, and `npm ci` done here).  It talks the DevTools protocol over
``--remote-debugging-pipe`` (fd 3 in, fd 4 out, NUL-separated JSON), so it needs
no websocket library.  It proves that the login page, the consent page (with a
scope unticked) and the device pages work in a browser, including oidc-provider's
self-submitting ``verification_uri_complete`` form.  Not collected by pytest.
"""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx2
import oidc_server as peer
from authlib.integrations.httpx_client import OAuth2Client
from authlib.oauth2.rfc7636 import create_s256_code_challenge


class Chromium:
    def __init__(self) -> None:
        r_in, self._w = os.pipe()  # we write -> chromium fd 3
        self._r, w_out = os.pipe()  # chromium fd 4 -> we read
        self._profile = tempfile.TemporaryDirectory()

        def fds() -> None:
            os.dup2(r_in, 3)
            os.dup2(w_out, 4)

        self.proc = subprocess.Popen(
            [
                "chromium",
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--remote-debugging-pipe",
                f"--user-data-dir={self._profile.name}",
                "about:blank",
            ],
            close_fds=False,  # fds 3/4 are set up in the child by fds()
            preexec_fn=fds,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(r_in)
        os.close(w_out)
        self._buf = b""
        self._id = 0
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]

    def send(self, method: str, params: dict[str, Any] | None = None, session: bool = False) -> Any:
        self._id += 1
        msg: dict[str, Any] = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = self.session
        os.write(self._w, json.dumps(msg).encode() + b"\0")
        while True:
            while b"\0" not in self._buf:
                chunk = os.read(self._r, 65536)
                if not chunk:
                    raise RuntimeError("chromium went away")
                self._buf += chunk
            raw, self._buf = self._buf.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result")

    def goto(self, url: str) -> None:
        self.send("Page.navigate", {"url": url}, session=True)

    def js(self, expr: str) -> Any:
        res = self.send("Runtime.evaluate", {"expression": expr, "returnByValue": True}, True)
        return res.get("result", {}).get("value")

    def wait_page(self, page_id: str, timeout: float = 10.0) -> None:
        end = time.monotonic() + timeout
        probe = "document.readyState === 'complete' && document.body && document.body.dataset.page"
        while time.monotonic() < end:
            if self.js(probe) == page_id:
                return
            time.sleep(0.05)
        raise RuntimeError(f"page {page_id!r} did not come; at {self.js('location.href')}")

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        os.close(self._w)
        os.close(self._r)
        self._profile.cleanup()


def main() -> None:
    got: dict[str, str] = {}

    class Callback(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.startswith("/callback"):  # not /favicon.ico
                got["path"] = self.path
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b'<html><body data-page="callback">done</body></html>')

        def log_message(self, *args: object) -> None:
            pass

    cb = http.server.HTTPServer(("127.0.0.1", 0), Callback)
    threading.Thread(target=cb.serve_forever, daemon=True).start()
    srv = peer.start_oidc_provider(None, tempfile.mkdtemp(prefix="oidc-chromium-"))
    browser = Chromium()
    try:
        meta = srv.metadata()
        pub = OAuth2Client(peer.PUBLIC_CLIENT_ID, token_endpoint_auth_method="none")
        redirect_uri = f"http://127.0.0.1:{cb.server_port}/callback"
        url, _ = pub.create_authorization_url(
            meta["authorization_endpoint"],
            redirect_uri=redirect_uri,
            scope="openid offline_access invoices:read invoices:write",
            code_challenge=create_s256_code_challenge("x" * 50),
            code_challenge_method="S256",
        )
        t = time.monotonic()
        browser.goto(url)
        browser.wait_page("login")
        browser.js(
            "document.querySelector('#username').value = 'alice';"
            "document.querySelector('#password').value = 'alice-password';"
            "document.querySelector('#login-submit').click()"
        )
        browser.wait_page("consent")
        browser.js(
            "document.querySelector('#scope-invoices-write').click();"
            "document.querySelector('#approve').click()"
        )
        browser.wait_page("callback")
        q = urllib.parse.parse_qs(urllib.parse.urlsplit(got["path"]).query)
        tok = pub.fetch_token(
            meta["token_endpoint"],
            grant_type="authorization_code",
            code=q["code"][0],
            redirect_uri=redirect_uri,
            code_verifier="x" * 50,
        )
        print(f"code flow in chromium: {time.monotonic() - t:.2f}s, scope={tok['scope']!r}")
        assert tok["scope"] == "openid offline_access invoices:read", tok

        da = httpx2.post(
            meta["device_authorization_endpoint"],
            data={"client_id": peer.PUBLIC_CLIENT_ID, "scope": "openid"},
        ).json()
        browser.goto(da["verification_uri_complete"])
        browser.wait_page("device-confirm")
        browser.js("document.querySelector('#device-confirm').click()")
        browser.wait_page("consent")  # same browser session: no password asked
        browser.js("document.querySelector('#approve').click()")
        browser.wait_page("device-success")
        r = httpx2.post(
            meta["token_endpoint"],
            data={
                "grant_type": peer.DEVICE_CODE_GRANT,
                "device_code": da["device_code"],
                "client_id": peer.PUBLIC_CLIENT_ID,
            },
        )
        print(f"device flow in chromium: {r.status_code} {sorted(r.json())}")
        assert r.status_code == 200, r.text
        print("OK")
    finally:
        browser.close()
        srv.stop()
        cb.shutdown()


if __name__ == "__main__":
    main()
