"""The async transport of ``renew --all`` on real sockets: idle connections the server
closed are found before reuse, as httpx2's own transport finds them."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator

import pytest

from tests.loopback import serving
from tokenctl.oauth.http import async_client_options


@pytest.fixture
def closing_server() -> Iterator[tuple[str, list[int]]]:
    """HTTP/1.1 on 127.0.0.1 that answers one request per connection, keep-alive
    announced, then closes the connection while the client keeps it idle."""
    served: list[int] = []

    def answer_once(connection: socket.socket, stop: threading.Event) -> None:
        with connection:
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = connection.recv(65536)
                if not chunk:
                    return
                request += chunk
            served.append(len(served) + 1)
            body = b'{"n": %d}' % len(served)
            connection.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Connection: keep-alive\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
            )
        # Closed on leaving the block: the client's idle connection is now dead.

    with serving(answer_once) as port:
        yield f"http://127.0.0.1:{port}/", served


def test_a_connection_the_server_closed_while_idle_is_not_reused(closing_server):
    import httpx2

    url, served = closing_server

    async def three_requests() -> list[int]:
        options = async_client_options(None)
        async with httpx2.AsyncClient(**options) as client:
            answers = []
            for _ in range(3):
                response = await client.get(url)
                answers.append(response.json()["n"])
                await asyncio.sleep(0.2)  # the server has closed this connection by now
            return answers

    assert asyncio.run(three_requests()) == [1, 2, 3]
    assert served == [1, 2, 3]


def test_the_transport_probes_the_socket_it_keeps(closing_server, monkeypatch):
    """Readable (the server's end of stream) is seen from the kept socket, no attribute
    lookup of anyio's per probe."""
    import httpx2

    from tokenctl.oauth import http

    url, _served = closing_server
    probes: list[bool] = []
    real = http._readable

    def counting(sock: socket.socket) -> bool:
        probes.append(real(sock))
        return probes[-1]

    async def two_requests() -> None:
        async with httpx2.AsyncClient(**async_client_options(None)) as client:
            await client.get(url)
            await asyncio.sleep(0.2)
            await client.get(url)

    monkeypatch.setattr(http, "_readable", counting)
    asyncio.run(two_requests())
    assert True in probes  # the closed idle connection was seen as readable, then dropped
