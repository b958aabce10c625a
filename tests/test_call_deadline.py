"""Every provider call ends by a total deadline, also against a server that trickles."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from tests.fakes import Cli
from tests.loopback import serving
from tests.oauth_support import RealClock, ScriptedBrowser, configure
from tests.proc import tokenctl

# How long a command may run before the test calls it hung: far above the 2 s deadline
# of the slow definition, far below the hour a trickled answer takes.
ENDS_WITHIN = 40


@contextlib.contextmanager
def trickling_server(interval: float = 0.5, max_bytes: int = 240) -> Iterator[str]:
    """A local HTTP server that answers every request one byte every ``interval`` seconds.

    The answer never gets past its header (``max_bytes`` bytes at most, two minutes at
    0.5 s each), so only a total deadline ends the wait; each read comes back quickly.
    Each connection stops by itself after ``max_bytes`` or when the client goes away.
    """
    answer = b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * max_bytes

    def trickle(connection: socket.socket, stop: threading.Event) -> None:
        with connection:
            connection.settimeout(5)
            with contextlib.suppress(OSError):
                connection.recv(65536)  # the request; its content does not matter
                for byte in answer[:max_bytes]:
                    if stop.is_set():
                        return
                    connection.sendall(bytes([byte]))
                    time.sleep(interval)

    with serving(trickle) as port:
        yield f"http://127.0.0.1:{port}/token"


@pytest.fixture
def keyring_cli(tmp_path, real_keyring):  # type: ignore[no-untyped-def]
    """The CLI in-process on the real keyring, so that a subprocess sees the same secrets."""
    from tokenctl.secrets.keyring_store import OsKeyring

    return Cli(home=tmp_path / "home", clock=RealClock(), keyring=OsKeyring())  # type: ignore[arg-type]


def _login(cli: Cli, oidc, tmp_path, token: str, definition: str) -> None:  # type: ignore[no-untyped-def]
    configure(cli, tmp_path, oidc, name=definition)
    cli.browser = ScriptedBrowser(oidc)
    result = cli("add", token, "--definition", definition, "--yes")
    assert result.exit_code == 0, result.stderr
    cli.browser = None


def _slow_down(cli: Cli, oidc, tmp_path, definition: str, token_endpoint: str) -> None:  # type: ignore[no-untyped-def]
    """Point the definition's token endpoint at the trickling server, with a 2 s deadline."""
    configure(
        cli,
        tmp_path,
        oidc,
        name=definition,
        token_endpoint=token_endpoint,
        call_deadline="2s",
    )


def test_renew_against_a_trickling_token_endpoint_ends_at_the_deadline(
    keyring_cli, oidc, tmp_path, real_keyring
):
    cli = keyring_cli
    _login(cli, oidc, tmp_path, "acme", "acme-books")
    before = cli.stored("acme")
    with trickling_server() as url:
        _slow_down(cli, oidc, tmp_path, "acme-books", url)
        started = time.monotonic()
        result = tokenctl(
            "renew", "acme", home=cli.home, env=real_keyring.child_env(), timeout=ENDS_WITHIN
        )
        took = time.monotonic() - started
    assert result.exit_code == 1, result.stderr
    assert f"{url} did not answer within the call deadline of 2 s" in result.stderr
    assert "oauth2.call_deadline" in result.stderr  # how to give the provider more time
    assert "Traceback" not in result.stderr
    assert took < ENDS_WITHIN
    # Nothing was changed: the same secrets, no renewal in the history.
    token = cli("show", "acme", "--json").json()["token"]
    assert cli.stored("acme") == before
    assert [e["event"] for e in token["history"]] == ["retrieved", "created"]


def test_renew_all_reports_the_slow_provider_and_renews_the_others(
    keyring_cli, oidc, tmp_path, real_keyring
):
    cli = keyring_cli
    _login(cli, oidc, tmp_path, "slow", "slow-books")
    _login(cli, oidc, tmp_path, "fast", "fast-books")
    with trickling_server() as url:
        _slow_down(cli, oidc, tmp_path, "slow-books", url)
        result = tokenctl(
            "renew",
            "--all",
            "--json",
            home=cli.home,
            env=real_keyring.child_env(),
            timeout=ENDS_WITHIN,
        )
    assert result.exit_code == 1, result.stderr
    items = {item["name"]: item for item in result.json()["renewals"]}
    assert items["fast"]["outcome"] == "refreshed"
    assert items["slow"]["outcome"] == "failed"
    assert f"{url} did not answer within the call deadline of 2 s" in items["slow"]["detail"]
    assert cli("show", "slow", "--json").json()["token"]["history"][0]["event"] == "retrieved"


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("0s", "must be from 1s to 1h, got '0s'"),
        ("2h", "must be from 1s to 1h, got '2h'"),
        ("soon", "invalid duration 'soon'"),
    ],
)
def test_call_deadline_is_validated(cli, tmp_path, value, problem):
    source = tmp_path / "slow.toml"
    source.write_text(
        "[definitions.slow]\n"
        'title = "Slow"\nkind = "oauth2"\n'
        "[definitions.slow.oauth2]\n"
        'token_endpoint = "https://slow.example/token"\n'
        f'call_deadline = "{value}"\n'
    )
    result = cli("definitions", "add", "--file", str(source))
    assert result.exit_code == 1
    assert "field 'oauth2.call_deadline'" in result.stderr and problem in result.stderr


def test_call_deadline_default_and_setting_show_in_the_definition(cli, tmp_path):
    source = tmp_path / "slow.toml"
    source.write_text(
        "[definitions.slow]\n"
        'title = "Slow"\nkind = "oauth2"\n'
        "[definitions.slow.oauth2]\n"
        'token_endpoint = "https://slow.example/token"\ncall_deadline = "90s"\n'
    )
    assert cli("definitions", "add", "--file", str(source)).exit_code == 0
    shown = cli("definitions", "show", "slow", "--json").json()["definition"]["oauth2"]
    assert shown["call_deadline"] == "1m30s"
    builtin = cli("definitions", "show", "exact-online-nl", "--json").json()["definition"]["oauth2"]
    assert builtin["call_deadline"] is None  # the default, 60 s


def test_the_sync_transport_ends_a_trickled_answer_at_its_deadline():
    import httpx2

    from tokenctl.oauth.http import CallDeadlineExceeded, DeadlineTransport

    with (
        trickling_server() as url,
        httpx2.Client(transport=DeadlineTransport(1.0)) as client,
        pytest.raises(CallDeadlineExceeded) as raised,
    ):
        client.post(url, data={"grant_type": "refresh_token"})
    assert raised.value.seconds == 1.0 and raised.value.url == url


def test_the_async_client_ends_a_trickled_answer_at_its_deadline():
    import asyncio

    from authlib.integrations.httpx_client import AsyncOAuth2Client

    from tokenctl.oauth.http import CallDeadlineExceeded, async_client_options, within_deadline

    async def call(url: str) -> None:
        async with AsyncOAuth2Client(client_id="c", **async_client_options()) as client:
            await within_deadline(client.refresh_token(url, refresh_token="r"), url, 1.0)

    started = time.monotonic()
    with trickling_server() as url, pytest.raises(CallDeadlineExceeded) as raised:
        asyncio.run(asyncio.wait_for(call(url), ENDS_WITHIN))
    assert raised.value.seconds == 1.0 and raised.value.url == url
    assert time.monotonic() - started < 10  # the deadline ended it, not the test's limit


def test_the_async_client_keeps_a_lent_transport_open():
    import asyncio

    import httpx2
    from authlib.integrations.httpx_client import AsyncOAuth2Client

    from tokenctl.oauth.http import async_client_options

    closed: list[bool] = []

    class Lent(httpx2.MockTransport):
        async def aclose(self) -> None:
            closed.append(True)

    lent = Lent(lambda request: httpx2.Response(200, json={"ok": True}))

    async def twice() -> None:
        for _ in range(2):
            async with AsyncOAuth2Client(client_id="c", **async_client_options(lent)) as client:
                answer = await client.request(
                    "GET", "https://provider.example/x", withhold_token=True
                )
                assert answer.json() == {"ok": True}

    asyncio.run(twice())
    assert closed == []


def test_closing_a_call_leaves_the_lent_transport_open():
    import httpx2

    from tokenctl.oauth.http import DeadlineTransport

    closed: list[bool] = []

    class Lent(httpx2.MockTransport):
        def close(self) -> None:
            closed.append(True)

    lent = Lent(lambda request: httpx2.Response(200, json={"ok": True}))
    for _ in range(2):  # one transport per provider call, over the same lent one
        with httpx2.Client(transport=DeadlineTransport(5.0, lent)) as client:
            assert client.get("https://provider.example/x").json() == {"ok": True}
    assert closed == []
