"""The loopback listener serves only requests addressed to it (DNS rebinding)."""

from __future__ import annotations

import http.client
from urllib.parse import urlencode, urlsplit

import pytest

from tests.oauth_support import configure, query_of
from tokenctl.oauth.loopback import CallbackCheck, LoopbackListener


def _get(port: int, target: str, host: str | None) -> tuple[int, str]:
    """A raw GET with exactly the Host header given (none when ``host`` is None)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.putrequest("GET", target, skip_host=True, skip_accept_encoding=True)
        if host is not None:
            connection.putheader("Host", host)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


def test_host_names_that_address_the_listener():
    from tokenctl.oauth.loopback import host_is_loopback

    assert host_is_loopback("127.0.0.1:8765", 8765)
    assert host_is_loopback("LOCALHOST:8765", 8765)
    for host in (
        None,
        "",
        "rebind.evil.example",
        "rebind.evil.example:8765",
        "127.0.0.1",
        "127.0.0.1:8766",
        "localhost.evil.example:8765",
        "[::1]:8765",
    ):
        assert not host_is_loopback(host, 8765), host


def test_a_foreign_host_gets_400_and_the_flow_goes_on():
    with LoopbackListener(CallbackCheck("st4te", None, issuer_required=False)) as listener:
        port = listener.port
        callback = "/callback?" + urlencode({"code": "c0de", "state": "st4te"})
        for host in ("rebind.evil.example", f"rebind.evil.example:{port}", None):
            status, body = _get(port, callback, host)
            assert status == 400, host
            assert "not addressed to tokenctl" in body
        absolute = f"http://rebind.evil.example:{port}{callback}"
        assert _get(port, absolute, f"127.0.0.1:{port}")[0] == 400
        assert listener.wait(0.2) is None  # nothing was accepted
        listener.finish(b"done")
        status, body = _get(port, callback, f"localhost:{port}")
        assert status == 200 and body == "done"
        accepted = listener.wait(5)
        assert accepted is not None and accepted.code == "c0de"


@pytest.mark.peers
def test_a_real_callback_with_a_rebound_host_does_not_complete_the_login(ocli, oidc, tmp_path):
    name = configure(ocli, tmp_path, oidc)
    answers: list[int] = []

    def browser(url: str) -> None:
        final = oidc.browser_login(url, "alice", "alice-password", follow_to_callback=False)
        parts = urlsplit(final)
        target = f"{parts.path}?{parts.query}"
        assert query_of(final)["code"]
        answers.append(_get(parts.port or 80, target, "rebind.evil.example")[0])
        answers.append(_get(parts.port or 80, target, parts.netloc)[0])  # the browser's own

    ocli.browser = browser
    result = ocli("add", "acme", "--definition", name, "--yes", "--timeout", "30")
    assert answers == [400, 200]
    assert result.exit_code == 0, result.stderr
    assert ocli("show", "acme", "--json").json()["token"]["account"] == "alice@example.test"


def test_the_authorization_code_never_shows_in_a_repr():
    from tokenctl.oauth.login_modes import AuthorizationCode, TokenResponse
    from tokenctl.oauth.loopback import Callback

    code = "SECRET-CODE-123"
    shown = repr(Callback({"code": code, "state": "s"})) + repr(
        AuthorizationCode(code, "verifier", "http://127.0.0.1:1/callback", {"code": code})
    )
    shown += repr(TokenResponse({"access_token": "a"}, {"code": code}))
    assert code not in shown and "verifier" not in shown


def test_closing_waits_until_the_final_page_has_reached_the_browser(monkeypatch):
    # The handler threads are daemons: a process that closed the listener and exited before
    # the page was written left the browser tab on a connection error (seen in Chromium).
    import threading
    import time

    written = threading.Event()
    respond = LoopbackListener._respond

    def slow_respond(self, handler, status, body):  # type: ignore[no-untyped-def]
        time.sleep(0.8)  # longer than the server's 0.5 s shutdown poll
        respond(self, handler, status, body)
        written.set()

    monkeypatch.setattr(LoopbackListener, "_respond", slow_respond)
    answers: list[tuple[int, str]] = []
    listener = LoopbackListener(CallbackCheck("st4te", None, issuer_required=False)).start()
    port = listener.port
    callback = "/callback?" + urlencode({"code": "c0de", "state": "st4te"})
    browser = threading.Thread(
        target=lambda: answers.append(_get(port, callback, f"127.0.0.1:{port}"))
    )
    browser.start()
    accepted = listener.wait(10)
    assert accepted is not None and accepted.code == "c0de"
    listener.finish(b"retrieved")
    listener.close()
    assert written.is_set(), "close() returned before the final page was sent"
    browser.join(10)
    assert answers == [(200, "retrieved")]


def test_a_parameter_twice_is_refused_and_named_only_when_it_is_a_plain_name():
    from tokenctl.oauth.loopback import parse_callback

    check = CallbackCheck("st4te", None, issuer_required=False)
    assert parse_callback("code=c&state=st4te", check) == ({"code": "c", "state": "st4te"}, None)
    _params, reason = parse_callback("code=c&state=st4te&state=other", check)
    assert reason == "The state parameter appears more than once (RFC 6749 §3.1)."
    _params, reason = parse_callback("code=c&state=st4te&%1b%5b2J=1&%1b%5b2J=2", check)
    assert reason == "A parameter appears more than once (RFC 6749 §3.1)."
