"""Webhook notices (`notify`, and what `check` and `renew --all` send) against a real HTTP
receiver on 127.0.0.1: signatures verify, a state is notified once, a receiver that is
down or broken neither blocks nor fails the run, and the next run tries again."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.fakes import Cli
from tests.proc import tokenctl

SECRET = "whsec-t0p-s3cret-value"


class Receiver:
    """A webhook receiver on 127.0.0.1 (a real server thread): records what it is sent."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/T0/B0/abcdWXYZ"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in self.received]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.close()


def closed_port_url() -> str:
    """A loopback URL nothing listens on: connections are refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/down"


def add_without_secret(cli: Cli, name: str) -> None:
    """A token recorded before its login: `check` finds it failing, no keyring needed."""
    from tests.oauth_support import write_books

    if not (cli.home / "definitions.toml").exists():
        write_books(cli, "https://books.invalid/token", "https://books.invalid/authorize")
    made = cli("add", name, "--definition", "books", "--no-login")
    assert made.exit_code == 0, made.stderr


def add_expiring_key(run: Callable[..., Any]) -> Any:
    """Add ``acme``, an API key expiring in 2 days (so `check` finds it expiring)."""
    made = run(
        "add", "acme", "--definition", "api-key", "--secret-stdin", "--expires-in", "2d",
        input="p4ss",
    )  # fmt: skip
    assert made.exit_code == 0, made.stderr
    return made


def verify(headers: dict[str, str], body: bytes, secret: str, now: float) -> bool:
    """What docs/monitoring.md tells a receiver to do (Stripe's scheme, 5 minutes)."""
    parts = dict(item.split("=", 1) for item in headers["x-tokenctl-signature"].split(","))
    timestamp = int(parts["t"])
    expected = hmac.new(
        secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256
    ).hexdigest()
    return hmac.compare_digest(expected, parts["v1"]) and abs(now - timestamp) <= 300


# -- real processes: the main flow -------------------------------------------------------


def test_check_notifies_each_change_once_signed_and_the_secret_stays_out(
    tmp_path, receiver, real_keyring
):
    home = tmp_path / "home"
    env = real_keyring.child_env()

    def run(*args: str, input: str | None = None) -> Any:
        return tokenctl(*args, home=home, env=env, input=input)

    added = run("notify", "add", receiver.url, "--secret-stdin", input=SECRET + "\n")
    assert added.exit_code == 0, added.stderr
    config = (home / "config.toml").read_text(encoding="utf-8")
    assert receiver.url in config and SECRET not in config and "signed = true" in config
    listed = run("notify", "list", "--json")
    assert listed.exit_code == 0, listed.stderr
    [hook] = listed.json()["webhooks"]
    assert hook["signed"] is True and hook["number"] == 1
    # The URL's credential part is not shown, only its host and last characters.
    assert "/T0/B0/" not in listed.stdout and hook["url"].endswith("WXYZ")
    made = add_expiring_key(run)

    first = run("check")
    assert first.exit_code == 10, first.stderr
    assert [b["event"] for b in receiver.bodies()] == ["expiring"]
    headers, raw = receiver.received[0]
    assert verify(headers, raw, SECRET, time.time())
    assert not verify(headers, raw, "another-secret", time.time())
    body = receiver.bodies()[0]
    assert body["schema_version"] == 1 and body["name"] == "acme" and body["number"] == 1
    assert body["definition"] == "api-key" and body["status"] == "expiring"
    assert body["fix"] == "tokenctl renew acme --secret-stdin" and "acme" in body["text"]

    again = run("check")
    assert again.exit_code == 10 and len(receiver.received) == 1  # unchanged: no duplicate

    past = run("renew", "acme", "--secret-stdin", "--expires-at", "2020-01-01", input="n3w")
    assert past.exit_code == 0, past.stderr
    failing = run("check")
    assert failing.exit_code == 11
    assert [b["event"] for b in receiver.bodies()] == ["expiring", "failing"]
    assert receiver.bodies()[1]["previous"] == "expiring"

    fine = run("renew", "acme", "--secret-stdin", "--expires-in", "90d", input="n3w3r")
    assert fine.exit_code == 0, fine.stderr
    assert run("check").exit_code == 0
    assert run("check").exit_code == 0
    assert [b["event"] for b in receiver.bodies()] == ["expiring", "failing", "recovered"]
    assert all(verify(h, b, SECRET, time.time()) for h, b in receiver.received)

    tested = run("notify", "test")
    assert tested.exit_code == 0, tested.stderr
    assert receiver.bodies()[-1]["event"] == "test"
    for proc in (added, listed, made, first, again, failing, tested):
        assert SECRET not in proc.stdout + proc.stderr
    removed = run("notify", "remove", receiver.url)
    assert removed.exit_code == 0, removed.stderr
    assert "webhooks" not in (home / "config.toml").read_text(encoding="utf-8")


def test_a_receiver_down_or_failing_does_not_block_or_fail_check_and_is_retried(tmp_path, receiver):
    down = closed_port_url()
    env = {"PATH": "/usr/bin:/bin", "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    # A token with no secret: `check` finds it failing without any keyring.
    cli = Cli(home=home)
    add_without_secret(cli, "gamma")
    for url in (down, receiver.url):
        assert tokenctl("notify", "add", url, home=home, env=env).exit_code == 0
    receiver.status = 500
    started = time.monotonic()
    first = tokenctl("check", home=home, env=env)
    elapsed = time.monotonic() - started
    assert first.exit_code == 11, first.stderr  # the exit code of check, unchanged
    assert elapsed < 20
    warnings = [line for line in first.stderr.splitlines() if "not delivered" in line]
    assert len(warnings) == 2  # one line per receiver
    assert len(receiver.received) == 3  # 500 is retried: 3 attempts
    receiver.status = 200
    second = tokenctl("check", home=home, env=env)
    assert second.exit_code == 11
    assert [b["event"] for b in receiver.bodies()[3:]] == ["failing"]  # retried, delivered
    assert receiver.bodies()[-1]["detail"] == "no secret is stored"
    assert len([ln for ln in second.stderr.splitlines() if "not delivered" in ln]) == 1
    third = tokenctl("check", home=home, env=env)
    assert len(receiver.received) == 4  # delivered once: not again
    assert len([ln for ln in third.stderr.splitlines() if "not delivered" in ln]) == 1


# -- in-process: edges -------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.example.com/x",
        "http://10.0.0.5/hook",
        "http://127.0.0.1.example.com/x",
        "ftp://example.com/x",
        "not a url",
        "https://hooks.example.com/a\tb",  # urlsplit would drop the tab silently
        "https://hooks.example.com/a b",
    ],
)
def test_notify_add_refuses_plain_http_off_this_machine(cli, url):
    refused = cli("notify", "add", url)
    assert refused.exit_code == 2, refused.stdout + refused.stderr
    assert "refused" in refused.stderr and refused.exception is None
    assert not (cli.home / "config.toml").exists()


@pytest.mark.parametrize("url", ["http://localhost:8080/x", "http://[::1]/x", "https://a.b/x"])
def test_notify_add_takes_https_and_loopback(cli, url):
    assert cli("notify", "add", url).exit_code == 0
    assert cli("notify", "list", "--json").json()["webhooks"][0]["signed"] is False


def test_add_keeps_the_rest_of_config_and_remove_by_number_drops_the_secret(cli):
    (cli.home).mkdir(parents=True, exist_ok=True)
    (cli.home / "config.toml").write_text('unit = "office"\nexpiring_window = "3d"\n')
    assert (
        cli("notify", "add", "https://a.example/one", "--secret-stdin", input=SECRET).exit_code == 0
    )
    assert cli("notify", "add", "https://b.example/two").exit_code == 0
    again = cli("notify", "add", "https://b.example/two")
    assert again.exit_code == 0 and "there already" in again.stderr
    text = (cli.home / "config.toml").read_text()
    assert 'unit = "office"' in text and 'expiring_window = "3d"' in text
    assert SECRET not in text and SECRET not in str(cli.keyring.entries)  # sealed
    from tokenctl.inventory.sqlite import SqliteInventory
    from tokenctl.services.notify import receiver_key

    inventory = SqliteInventory(cli.home / "inventory.sqlite3", lambda: cli.keyring)
    try:
        assert inventory.webhook_secret(receiver_key("https://a.example/one")) == SECRET
        removed = cli("notify", "remove", "1")
        assert removed.exit_code == 0 and "signing secret" in removed.stderr
        assert inventory.webhook_secret(receiver_key("https://a.example/one")) is None
    finally:
        inventory.close()
    assert [h["url"] for h in cli("notify", "list", "--json").json()["webhooks"]] == [
        "https://b.example/two"
    ]
    missing = cli("notify", "remove", "https://nowhere.example/x")
    assert missing.exit_code == 3


def test_config_with_a_plain_http_webhook_elsewhere_is_a_config_error(cli):
    cli.home.mkdir(parents=True, exist_ok=True)
    (cli.home / "config.toml").write_text('[[webhooks]]\nurl = "http://example.com/secret"\n')
    broken = cli("check")
    assert broken.exit_code == 1 and "webhook URL is refused" in broken.stderr
    assert "secret" not in broken.stderr.replace("signing secret", "")


def test_a_config_webhook_with_a_control_character_is_refused_with_the_fix(cli):
    cli.home.mkdir(parents=True, exist_ok=True)
    (cli.home / "config.toml").write_text('[[webhooks]]\nurl = "https://h.example/a\\tb"\n')
    broken = cli("check")
    assert broken.exit_code == 1 and broken.exception is None
    assert "control characters" in broken.stderr and "edit " in broken.stderr


def test_two_webhooks_get_the_same_notice_id(cli, receiver):
    add_without_secret(cli, "delta")
    assert cli("notify", "add", receiver.url).exit_code == 0
    assert cli("notify", "add", receiver.url.replace("127.0.0.1", "localhost")).exit_code == 0
    assert cli("check").exit_code == 11
    first, second = receiver.bodies()
    assert first["id"] == second["id"] and first["event"] == second["event"] == "failing"


def test_plain_http_to_this_machine_never_goes_through_an_environment_proxy(monkeypatch):
    import httpx2

    from tokenctl.oauth.http import DeadlineTransport

    monkeypatch.setenv("HTTP_PROXY", "http://proxy.invalid:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    client = DeadlineTransport(5, loopback_direct=True)._client
    for url in ("http://127.0.0.1:9/x", "http://localhost:9/x", "http://[::1]:9/x"):
        assert "Proxy" not in type(client._transport_for_url(httpx2.URL(url))._pool).__name__
    # Elsewhere the environment's proxy still applies (https goes to other hosts only).
    elsewhere = client._transport_for_url(httpx2.URL("http://example.com/x"))
    assert "Proxy" in type(elsewhere._pool).__name__


def test_renew_of_one_token_refuses_no_notify(cli):
    refused = cli("renew", "some-token", "--no-notify")
    assert refused.exit_code == 2 and "--no-notify applies to --all" in refused.stderr


def test_renew_all_notifies_login_needed_once_and_keeps_its_exit_code(cli, receiver):
    add_without_secret(cli, "books-a")
    assert cli("notify", "add", receiver.url).exit_code == 0
    first = cli("renew", "--all")
    assert first.exit_code == 1, first.stderr  # needs-login: 1, notices or not
    second = cli("renew", "--all")
    assert second.exit_code == 1
    [body] = receiver.bodies()
    assert body["event"] == "login_needed" and body["source"] == "renew --all"
    assert body["fix"] == "tokenctl renew books-a --login"
    # check reports on its own channel: the same token failing is a notice of its own.
    assert cli("check").exit_code == 11
    assert [b["event"] for b in receiver.bodies()] == ["login_needed", "failing"]
    assert cli("renew", "--all").exit_code == 1 and len(receiver.received) == 2


def test_notify_test_fails_for_a_receiver_that_refuses(cli, receiver):
    receiver.status = 404
    assert cli("notify", "add", receiver.url).exit_code == 0
    tested = cli("notify", "test")
    assert tested.exit_code == 1 and "HTTP 404" in tested.stderr
    assert len(receiver.received) == 1  # a refusal is not retried
    assert "/hooks/T0/B0/" not in tested.stderr


def test_no_notify_and_no_webhooks_touch_nothing(cli, receiver):
    add_without_secret(cli, "gamma")
    assert cli("check").exit_code == 11  # no webhooks: nothing sent, nothing read
    assert cli("notify", "add", receiver.url).exit_code == 0
    assert cli("check", "--no-notify").exit_code == 11
    assert receiver.received == []
    assert cli("check").exit_code == 11
    assert [b["event"] for b in receiver.bodies()] == ["failing"]


def test_a_provider_text_cannot_ping_a_slack_channel():
    """A reason quotes what a provider said: in `text` it must not become a mention."""
    from datetime import UTC, datetime

    from tokenctl.models import Status, Token
    from tokenctl.services.notify import Notice, NoticeEvent

    token = Token(1, "acme", "code", "api-key")
    at = datetime(2026, 1, 1, tzinfo=UTC)
    notice = Notice(
        "id",
        NoticeEvent.FAILING,
        at,
        "check",
        "host",
        token,
        Status.INVALID,
        "invalid: <!channel> & <https://evil.example|click>",
        "tokenctl renew acme",
    )
    body = json.loads(notice.body())
    assert body["detail"] == "invalid: <!channel> & <https://evil.example|click>"
    assert "<" not in body["text"] and "&lt;!channel&gt; &amp; &lt;https" in body["text"]


def test_a_signed_webhook_whose_secret_is_gone_sends_nothing_and_says_so(cli, receiver):
    add_without_secret(cli, "gamma")
    cli.home.mkdir(parents=True, exist_ok=True)
    (cli.home / "config.toml").write_text(f'[[webhooks]]\nurl = "{receiver.url}"\nsigned = true\n')
    ran = cli("check")
    assert ran.exit_code == 11 and "signing secret is not in this store" in ran.stderr
    assert receiver.received == []


# -- the team store: notices shared between machines -------------------------------------


def test_two_machines_on_the_team_store_notify_a_state_once(
    tmp_path, openbao, openbao_kv, receiver
):
    from tests.test_team_store_cli import Machine, _team_config

    laptop, cron = Machine(tmp_path, "laptop", openbao), Machine(tmp_path, "cron", openbao)
    for machine in (laptop, cron):
        _team_config(machine.home, openbao, openbao_kv)
        added = machine("notify", "add", receiver.url, "--secret-stdin", input=SECRET)
        assert added.exit_code == 0, added.stderr
    add_expiring_key(laptop)
    assert laptop("check").exit_code == 10
    assert cron("check").exit_code == 10  # the notice is shared: cron sends none
    assert [b["event"] for b in receiver.bodies()] == ["expiring"]
    assert verify(*receiver.received[0], SECRET, time.time())
    renewed = cron("renew", "acme", "--secret-stdin", "--expires-in", "60d", input="n3w")
    assert renewed.exit_code == 0, renewed.stderr
    assert cron("check").exit_code == 0
    assert laptop("check").exit_code == 0
    assert [b["event"] for b in receiver.bodies()] == ["expiring", "recovered"]
    # The secret is in the team store, not in any config.toml.
    for machine in (laptop, cron):
        assert SECRET not in (machine.home / "config.toml").read_text(encoding="utf-8")
    assert isinstance(Path(laptop.home), Path)
