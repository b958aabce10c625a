"""The fast OAuth tier: protocol edge cases on ``httpx2.MockTransport``, without node.

The provider is a mock handed to tokenctl through ``AppContext.http_transport`` (under
the real deadline layer). Each case runs through both faces of the one refresh
transaction: ``renew`` (sync) and ``renew --all`` (async). The real oidc-provider tests
(test_oauth_*.py) stay the end-to-end tier.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

import httpx2
import pytest

from tests.fakes import Cli
from tests.oauth_support import add_books_token, stored, write_books

TOKEN_URL = "https://books.example/token"


class MockProvider:
    """A token endpoint whose next refresh answer the test chooses (``answer``).

    It rotates refresh tokens (RT-1, RT-2, ...) unless told not to. ``slow`` seconds
    delay every refresh answer: asleep in the sync face's exchange thread, awaited on
    the async face's loop.
    """

    def __init__(self) -> None:
        self.issued = 0
        self.answer: Callable[[], httpx2.Response] | None = None
        self.slow = 0.0
        self.refresh_grants: list[str] = []
        self.transport = httpx2.MockTransport(self.handle)

    def tokens(self, *, rotate: bool = True, expires: bool = True) -> httpx2.Response:
        self.issued += 1
        body: dict[str, Any] = {"access_token": f"AT-{self.issued}", "token_type": "Bearer"}
        if rotate:
            body["refresh_token"] = f"RT-{self.issued}"
        if expires:
            body["expires_in"] = 3600
        return httpx2.Response(200, json=body)

    def handle(self, request: httpx2.Request) -> Any:
        assert str(request.url) == TOKEN_URL, request.url
        form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
        if form["grant_type"] == "authorization_code":
            return self.tokens()
        assert form["grant_type"] == "refresh_token"
        self.refresh_grants.append(form["refresh_token"])
        response = self.answer() if self.answer is not None else self.tokens()
        if not self.slow:
            return response
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # the sync face: this runs in the deadline layer's thread
            time.sleep(self.slow)
            return response
        return self._later(response)

    async def _later(self, response: httpx2.Response) -> httpx2.Response:
        await asyncio.sleep(self.slow)
        return response


@pytest.fixture
def provider() -> MockProvider:
    return MockProvider()


@pytest.fixture
def books(cli: Cli, provider: MockProvider) -> Cli:
    """A CLI with one OAuth token ``acme`` (RT-1) obtained through the mock provider."""
    write_books(cli, TOKEN_URL, "https://books.example/authorize", call_deadline="1s")
    cli.transport = provider.transport
    add_books_token(cli)
    return cli


def record(cli: Cli, name: str = "acme") -> Any:
    return cli("show", name, "--json").json()["token"]


def renew(cli: Cli, face: str) -> tuple[int, str, dict[str, Any] | None]:
    """Renew ``acme`` through ``face``: exit code, stderr, and the renew --all item."""
    if face == "renew":
        result = cli("renew", "acme")
        return result.exit_code, result.stderr, None
    result = cli("renew", "--all", "--json")
    (item,) = result.json()["renewals"]
    return result.exit_code, result.stderr, item


FACES = ["renew", "renew --all"]


def assert_refreshed(cli: Cli, face: str) -> None:
    """Renew ``acme`` through ``face`` and check that it was refreshed."""
    code, stderr, item = renew(cli, face)
    assert code == 0, stderr
    assert item is None or item["outcome"] == "refreshed"


def assert_unchanged(cli: Cli, before: Any) -> None:
    """Nothing was lost: the same secrets, no renewal in the history, still valid."""
    assert stored(cli) == before
    token = record(cli)
    assert [e["event"] for e in token["history"]] == ["retrieved", "created"]
    assert token["invalid_at"] is None


HTML_PAGE = b"<html><body><h1>Service unavailable</h1></body></html>"
UNREADABLE_ANSWERS = {
    "malformed JSON": (
        200,
        b'{"access_token": "AT-x", ',
        "application/json",
        f"{TOKEN_URL} did not answer with a token response",
    ),
    "HTML page, 500": (500, HTML_PAGE, "text/html", f"could not reach {TOKEN_URL}"),
    "HTML page, 502": (502, HTML_PAGE, "text/html", f"could not reach {TOKEN_URL}"),
    "HTML page, 403": (403, HTML_PAGE, "text/html", f"could not reach {TOKEN_URL}"),
    "500 with a JSON body": (
        500,
        json.dumps({"error": "server_error"}).encode(),
        "application/json",
        f"could not reach {TOKEN_URL}",
    ),
}


@pytest.mark.parametrize("face", FACES)
@pytest.mark.parametrize("answer", UNREADABLE_ANSWERS)
def test_an_unusable_answer_fails_and_changes_nothing(books, provider, face, answer):
    status, content, content_type, message = UNREADABLE_ANSWERS[answer]
    before = stored(books)
    provider.answer = lambda: httpx2.Response(
        status, content=content, headers={"Content-Type": content_type}
    )
    code, stderr, item = renew(books, face)
    assert code == 1, stderr
    if item is None:
        assert message in stderr
    else:
        assert item["outcome"] == "failed" and message in item["detail"]
    assert "Traceback" not in stderr and "<html>" not in stderr
    assert_unchanged(books, before)


@pytest.mark.parametrize("face", FACES)
def test_a_slow_answer_ends_at_the_call_deadline(books, provider, face):
    before = stored(books)
    provider.slow = 3.0  # the definition's call_deadline is 1 s
    started = time.monotonic()
    code, stderr, item = renew(books, face)
    took = time.monotonic() - started
    assert code == 1, stderr
    message = f"{TOKEN_URL} did not answer within the call deadline of 1 s"
    assert message in (stderr if item is None else item["detail"])
    assert took < 2.9
    assert_unchanged(books, before)


@pytest.mark.parametrize("face", FACES)
def test_invalid_grant_marks_the_token_invalid_and_names_the_login(books, provider, face):
    provider.answer = lambda: httpx2.Response(
        400, json={"error": "invalid_grant", "error_description": "revoked"}
    )
    code, stderr, item = renew(books, face)
    fix = "tokenctl renew acme --login"
    if item is None:
        assert code == 5, stderr
        assert "invalid_grant" in stderr and fix in stderr
    else:
        assert code == 1, stderr
        assert item["outcome"] == "needs-login"
        assert item["detail"] == "the provider refused the refresh token (invalid_grant)"
        assert item["fix"] == fix
    token = record(books)
    assert token["invalid_at"] is not None
    assert token["invalid_reason"] == "refresh refused (invalid_grant)"
    assert token["history"][0]["outcome"] == "invalid_grant"
    # The refused refresh token is never sent again: a token call would fail loudly.
    provider.answer = None
    again = books("token", "acme")
    assert again.exit_code == 5 and fix in again.stderr
    assert provider.refresh_grants == ["RT-1"]


@pytest.mark.parametrize("face", FACES)
def test_a_missing_expires_in_leaves_the_expiry_unknown(books, provider, face):
    assert record(books)["expires_at"] is not None
    provider.answer = lambda: provider.tokens(expires=False)
    assert_refreshed(books, face)
    assert record(books)["expires_at"] is None
    assert stored(books).access_token == "AT-2"


@pytest.mark.parametrize("face", FACES)
def test_a_rotated_refresh_token_is_persisted(books, provider, face):
    assert_refreshed(books, face)
    secrets = stored(books)
    assert (secrets.access_token, secrets.refresh_token) == ("AT-2", "RT-2")
    token = record(books)
    assert token["history"][0]["event"] == "renewed"
    assert "rotated" in token["history"][0]["detail"]
    # The next refresh sends the rotated one.
    assert_refreshed(books, face)
    assert provider.refresh_grants == ["RT-1", "RT-2"]
    assert stored(books).refresh_token == "RT-3"


@pytest.mark.parametrize("face", FACES)
def test_an_answer_without_a_refresh_token_keeps_the_old_one(books, provider, face):
    provider.answer = lambda: provider.tokens(rotate=False)
    assert_refreshed(books, face)
    secrets = stored(books)
    assert (secrets.access_token, secrets.refresh_token) == ("AT-2", "RT-1")
    token = record(books)
    assert token["has_refresh_token"] is True
    assert "rotated" not in token["history"][0]["detail"]


def test_token_refreshes_through_the_same_transaction(books, provider):
    books.clock.advance(hours=2)  # the access token (1 h) has expired
    result = books("token", "acme")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == "AT-2"
    assert provider.refresh_grants == ["RT-1"]
    assert stored(books).refresh_token == "RT-2"


def test_renew_all_reports_each_token_on_its_own(books, provider):
    add_books_token(books, "beta")
    refused = {"RT-1"}

    def answer() -> httpx2.Response:
        if provider.refresh_grants[-1] in refused:
            return httpx2.Response(400, json={"error": "invalid_grant"})
        return provider.tokens()

    provider.answer = answer
    result = books("renew", "--all", "--json")
    assert result.exit_code == 1, result.stderr
    items = {i["name"]: i for i in json.loads(result.stdout)["renewals"]}
    assert items["acme"]["outcome"] == "needs-login"
    assert items["beta"]["outcome"] == "refreshed"
    assert stored(books, "beta").refresh_token == "RT-3"


@pytest.mark.parametrize("face", FACES)
def test_a_secret_echoed_in_an_error_description_is_masked(books, provider, face):
    provider.answer = lambda: httpx2.Response(
        400,
        json={
            "error": "invalid_request",
            "error_description": "cannot use RT-1 for this client " + "x" * 500,
        },
    )
    code, stderr, item = renew(books, face)
    said = stderr + json.dumps(item)
    assert code != 0 and "invalid_request" in said
    assert "RT-1" not in said and "[redacted]" in said
    assert "x" * 301 not in said  # the description is cut at 300 characters


DEVICE_URL = "https://books.example/device"


@pytest.mark.parametrize(
    ("answer", "named"),
    [
        (
            httpx2.Response(
                200, text="<html>nope</html>", headers={"content-type": "application/json"}
            ),
            "device_code",
        ),
        (httpx2.Response(200, json=["a list"]), "device_code"),
        (
            httpx2.Response(200, json={"user_code": "ABCD", "verification_uri": "https://v"}),
            "device_code",
        ),
        (
            httpx2.Response(200, json={"device_code": "d", "verification_uri": "https://v"}),
            "user_code",
        ),
        (httpx2.Response(200, json={"device_code": "d", "user_code": "U"}), "verification_url"),
        (
            httpx2.Response(
                200, json={"device_code": 7, "user_code": "U", "verification_uri": "v"}
            ),
            "device_code",
        ),
    ],
)
def test_a_malformed_device_authorization_answer_is_named_not_a_crash(cli, answer, named):
    def handle(request: httpx2.Request) -> httpx2.Response:
        assert str(request.url) == DEVICE_URL
        return answer

    cli.transport = httpx2.MockTransport(handle)
    write_books(cli, TOKEN_URL, "https://books.example/authorize")
    definitions = cli.home / "definitions.toml"
    definitions.write_text(
        definitions.read_text() + f'device_authorization_endpoint = "{DEVICE_URL}"\n'
    )
    result = cli("add", "acme", "--definition", "books", "--device", "--yes")
    assert result.exit_code == 1, result.stderr
    assert f"the device authorization endpoint {DEVICE_URL} sent no usable '{named}'" in (
        result.stderr
    )
    assert "RFC 8628" in result.stderr and "Traceback" not in result.stderr
    assert cli("list", "--json").json()["tokens"] == []


def test_unusable_device_durations_fall_back_to_the_rfc_defaults():
    from tokenctl.oauth.provider import _device_authorization

    base = {"device_code": "d", "user_code": "U", "verification_uri": "https://v"}
    for expires_in, interval in (("soon", "often"), (-5, -1), (1e300, float("nan")), (None, True)):
        device = _device_authorization(
            DEVICE_URL, {**base, "expires_in": expires_in, "interval": interval}
        )
        assert (device.expires_in, device.interval) == (600, 5)
    device = _device_authorization(DEVICE_URL, {**base, "expires_in": "900", "interval": 0.2})
    assert (device.expires_in, device.interval) == (900, 1)
