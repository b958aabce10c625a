"""The HTTP layer under authlib: every call to a provider ends by a total deadline.

httpx2's timeouts apply to each connect, write and read on its own, so a server that
trickles one byte every few seconds is never timed out. Each call therefore has a
deadline that bounds the whole exchange, the response body included, and raises
:class:`CallDeadlineExceeded` when it is over:

* the sync client (:mod:`tokenctl.oauth.provider`) gets :class:`DeadlineTransport`: a
  blocking read cannot be interrupted, so the exchange runs in a worker thread that the
  caller waits for until the deadline. It hands the request to a plain httpx2 client (so
  proxy settings from the environment keep working) and reads the whole answer;
* the async client of ``renew --all`` is cancelled by :func:`within_deadline` around the
  awaited call, on the network directly.

The transport under both is the network, or the one the
:class:`~tokenctl.context.AppContext` carries (tests: a mock). Every client shares one TLS
context (:func:`shared_ssl_context`).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Awaitable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

import httpcore2
import httpx2
from httpcore2._utils import is_socket_readable as _readable

if TYPE_CHECKING:
    import socket
    import ssl

T = TypeVar("T")

#: Each connect, write or read on its own (the deadline bounds them all together).
READ_TIMEOUT = 30.0
#: URL patterns of this machine: with ``loopback_direct``, sent without a proxy.
LOOPBACK_PATTERNS = ("all://127.0.0.1", "all://localhost", "all://[::1]")


@functools.cache
def shared_ssl_context() -> ssl.SSLContext:
    """The one TLS context of every provider client of this process.

    Each httpx2 client would otherwise build its own, loading the whole CA bundle again
    (tens of milliseconds each; a run makes a client per provider call). It is httpx2's
    default context (``SSL_CERT_FILE``/``SSL_CERT_DIR`` honoured) and may be shared: an
    ``SSLContext`` is safe to use from several connections and threads.
    """
    return httpx2.create_ssl_context()


class CallDeadlineExceeded(httpx2.TimeoutException):
    """A provider call did not complete within its deadline."""

    def __init__(self, url: str, seconds: float, request: httpx2.Request | None = None) -> None:
        self.url = url
        self.seconds = seconds
        super().__init__(f"{url} did not answer within {seconds:g} s", request=request)


def _settled(request: httpx2.Request, response: httpx2.Response, body: bytes) -> httpx2.Response:
    """The answer, its body already read, for the calling client to decode."""
    return httpx2.Response(
        response.status_code,
        headers=response.headers,
        stream=httpx2.ByteStream(body),
        extensions=response.extensions,
        request=request,
    )


def _raw_body(response: httpx2.Response) -> bytes:
    """The answer's bytes as sent; an answer built in memory (a mock's) is already read."""
    if response.is_stream_consumed:
        return response.content
    return b"".join(response.iter_raw())


class _Borrowed(httpx2.BaseTransport):
    """A transport the context lends (tests: one mock for every call): used, never closed.

    Each provider call closes its own client; that must not close the lent transport
    for the calls after it.
    """

    def __init__(self, lent: httpx2.BaseTransport) -> None:
        self._lent = lent

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        """Hand the request to the lent transport."""
        return self._lent.handle_request(request)


class _AsyncBorrowed(httpx2.AsyncBaseTransport):
    """:class:`_Borrowed` for the async client."""

    def __init__(self, lent: httpx2.AsyncBaseTransport) -> None:
        self._lent = lent

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        """Hand the request to the lent transport."""
        return await self._lent.handle_async_request(request)


class DeadlineTransport(httpx2.BaseTransport):
    """A sync transport that gives up on a request after ``seconds`` in all.

    A blocking socket read cannot be interrupted, so the exchange runs in a daemon
    thread and the caller waits for it at most until the deadline. A thread left behind
    only finishes reading an answer nobody uses (bounded by :data:`READ_TIMEOUT` per
    read) and closes the connection itself; it never outlives the process.
    """

    def __init__(
        self,
        seconds: float,
        inner: httpx2.BaseTransport | None = None,
        *,
        loopback_direct: bool = False,
    ) -> None:
        self.seconds = seconds
        lent = None if inner is None else _Borrowed(inner)
        # ``loopback_direct``: requests to this machine never go through a proxy from the
        # environment (HTTP_PROXY without NO_PROXY would send them across the network).
        direct: dict[str, httpx2.BaseTransport | None] | None = (
            dict.fromkeys(LOOPBACK_PATTERNS) if loopback_direct and lent is None else None
        )
        self._client = httpx2.Client(
            timeout=READ_TIMEOUT, transport=lent, verify=shared_ssl_context(), mounts=direct
        )
        self._lock = threading.Lock()
        self._running = 0
        self._closing = False

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        """Send ``request`` and read the whole answer, or raise at the deadline."""
        outcome: list[Any] = []

        def exchange() -> None:
            try:
                response = self._client.send(request, stream=True)
                try:
                    body = _raw_body(response)
                finally:
                    response.close()
                outcome.append(_settled(request, response, body))
            except BaseException as error:  # handed to the caller's thread
                outcome.append(error)
            finally:
                self._finished()

        with self._lock:
            self._running += 1
        worker = threading.Thread(target=exchange, name="tokenctl-http", daemon=True)
        worker.start()
        worker.join(self.seconds)
        if not outcome:
            url = str(request.url.copy_with(query=None, fragment=None))
            raise CallDeadlineExceeded(url, self.seconds, request)
        result = outcome[0]
        if isinstance(result, BaseException):
            raise result
        response: httpx2.Response = result
        return response

    def _finished(self) -> None:
        with self._lock:
            self._running -= 1
            close_now = self._closing and self._running == 0
        if close_now:
            self._client.close()

    def close(self) -> None:
        """Close the connections; one still read by a late thread is closed by it."""
        with self._lock:
            self._closing = True
            close_now = self._running == 0
        if close_now:
            self._client.close()


def client_options(seconds: float, inner: Any = None) -> dict[str, Any]:
    """Keyword arguments for authlib's sync ``OAuth2Client``: the deadline transport.

    ``inner`` is the transport under the deadline (``None``: the network).
    """
    if inner is not None and not isinstance(inner, httpx2.BaseTransport):
        raise TypeError(f"{type(inner).__name__} is no sync httpx2 transport")
    return {"transport": DeadlineTransport(seconds, inner), "timeout": READ_TIMEOUT}


def async_client_options(inner: Any = None) -> dict[str, Any]:
    """Keyword arguments for authlib's ``AsyncOAuth2Client`` (``renew --all``).

    No deadline layer here: an awaited call can be cancelled at any point, so
    :func:`within_deadline` bounds the whole exchange around the call itself, and the
    client talks to the network (or to ``inner``, a test's transport) directly: one
    httpx2 client a request instead of two.
    """
    if inner is not None and not isinstance(inner, httpx2.AsyncBaseTransport):
        raise TypeError(f"{type(inner).__name__} is no async httpx2 transport")
    options: dict[str, Any] = {"timeout": READ_TIMEOUT, "verify": shared_ssl_context()}
    options["transport"] = _AsyncBorrowed(inner) if inner is not None else _async_network()
    return options


def _async_network() -> httpx2.AsyncHTTPTransport:
    """httpx2's async transport to the network, its sockets seen through :class:`_Probed`.

    Before each request httpcore2's pool asks every idle connection whether its socket
    is readable (a server that closed it); anyio answers by building all of the
    socket's attributes, a ``getpeername`` call among them, each time: about a third of
    a millisecond per request in ``renew --all`` (measured, benchmarks/renew_all.py).
    The pool is httpx2's own, with httpx2's limits; only its network backend differs.
    """
    transport = httpx2.AsyncHTTPTransport(verify=shared_ssl_context())
    limits = httpx2.Limits()
    # httpx2 offers no parameter for the backend: its pool is rebuilt with one.
    transport._pool = httpcore2.AsyncConnectionPool(
        ssl_context=shared_ssl_context(),
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        network_backend=_ProbedBackend(httpcore2.AnyIOBackend()),
    )
    return transport


class _ProbedBackend(httpcore2.AsyncNetworkBackend):
    """anyio's backend, each stream wrapped in :class:`_Probed`."""

    def __init__(self, inner: httpcore2.AsyncNetworkBackend) -> None:
        self._inner = inner

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        """A TCP connection, as anyio makes it."""
        stream = await self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        return _Probed(stream)

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore2.AsyncNetworkStream:
        """A Unix socket connection, as anyio makes it."""
        return _Probed(await self._inner.connect_unix_socket(path, timeout, socket_options))

    async def sleep(self, seconds: float) -> None:
        """Sleep as anyio does."""
        await self._inner.sleep(seconds)


class _Probed(httpcore2.AsyncNetworkStream):
    """A network stream that answers "is the socket readable?" from the socket it keeps."""

    def __init__(self, inner: httpcore2.AsyncNetworkStream) -> None:
        self._inner = inner
        self._socket: socket.socket | None = inner.get_extra_info("socket")

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        """Read as the wrapped stream does."""
        return await self._inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        """Write as the wrapped stream does."""
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        """Close the wrapped stream."""
        await self._inner.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        """TLS over the same socket, probed the same way."""
        return _Probed(await self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        """``is_readable`` from the kept socket (as httpcore2 decides it); the rest asked."""
        if info == "is_readable" and self._socket is not None:
            return _readable(self._socket)  # httpcore2's own test, on the kept socket
        return self._inner.get_extra_info(info)


async def within_deadline(call: Awaitable[T], url: str, seconds: float) -> T:
    """Await ``call`` (an authlib request to ``url``), or raise once ``seconds`` are over.

    authlib reads the whole answer before its request returns, so the deadline covers
    the body too, as :class:`DeadlineTransport` does for the sync face.
    """
    import asyncio  # only renew --all runs an event loop

    deadline = asyncio.timeout(seconds)
    try:
        async with deadline:
            return await call
    except TimeoutError:
        if not deadline.expired():
            raise
        raise CallDeadlineExceeded(url, seconds) from None
