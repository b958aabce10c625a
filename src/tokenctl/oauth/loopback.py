"""A one-shot HTTP listener on the loopback interface that receives the authorization response.

It listens on 127.0.0.1, never on another interface. For a definition whose redirect URI
names ``localhost`` (``oauth2.redirect_host``) it listens on ``[::1]`` at the same port as
well, where the machine has IPv6 loopback: a browser may resolve ``localhost`` to either
address (RFC 8252 §8.3), and no other program may take the callback on the one left open.

It is started before the browser opens. A request whose Host header is not this listener
(``127.0.0.1:PORT`` or ``localhost:PORT``) is answered 400 and ignored: a web page the user
visits could otherwise reach it through DNS rebinding (``Host: rebind.evil.example``).
A callback with the wrong state or issuer is answered and ignored too; the flow goes on
waiting. The first acceptable callback is handed
to the caller, whose final page (success with the account, or failure) is then sent to
the browser before the listener closes.
"""

from __future__ import annotations

import errno
import queue
import socket
import sys
import threading
from dataclasses import dataclass, field, replace
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tokenctl.definitions.model import LoopbackHost
from tokenctl.errors import UsageError
from tokenctl.oauth.pages import page, rejected_page

CALLBACK_PATH = "/callback"
FINAL_PAGE_WAIT = 60.0
#: How long closing waits for the final page to reach the browser: the handler threads are
#: daemons, and a process that exits first leaves the tab on a connection error.
FINAL_PAGE_SEND_WAIT = 5.0
#: Tries at an ephemeral port free on both 127.0.0.1 and [::1] (``localhost`` redirects).
EPHEMERAL_TRIES = 8


#: What bind() says when another program holds the port (Windows has its own codes).
_PORT_TAKEN = frozenset(
    code
    for code in (
        errno.EADDRINUSE,
        errno.EACCES,
        getattr(errno, "WSAEADDRINUSE", None),
        getattr(errno, "WSAEACCES", None),
    )
    if code is not None
)


class PortInUseError(UsageError):
    """The fixed loopback port of a definition is taken by another program."""


class _Server(ThreadingHTTPServer):
    """The listener on 127.0.0.1: a port another program listens on is never shared.

    POSIX ``SO_REUSEADDR`` (Python's default for HTTP servers) only lets a port in
    TIME_WAIT be bound again; on Windows it would let this socket bind a port another
    program is listening on, so there it is off and the port is taken exclusively.
    """

    allow_reuse_address = sys.platform != "win32"

    def server_bind(self) -> None:
        if sys.platform == "win32":
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_EXCLUSIVEADDRUSE, 1)
        super().server_bind()


class _Server6(_Server):
    """The same listener on [::1] only (never an IPv4-mapped or other address)."""

    address_family = socket.AF_INET6

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        super().server_bind()


def _ipv6_loopback_missing(error: OSError) -> bool:
    """True when [::1] cannot be bound because this machine has no IPv6 loopback."""
    return error.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT) or isinstance(
        error, socket.gaierror
    )


@dataclass(frozen=True)
class CallbackCheck:
    """What an acceptable callback must carry."""

    state: str
    issuer: str | None
    issuer_required: bool


@dataclass(frozen=True)
class Callback:
    """An accepted authorization response: a code, or a provider error."""

    params: dict[str, str] = field(repr=False)  # holds the authorization code

    @property
    def code(self) -> str | None:
        """The authorization code, when the provider granted access."""
        return self.params.get("code")

    @property
    def error(self) -> str | None:
        """The provider's error code (``access_denied``, ...), if any."""
        return self.params.get("error")


def host_is_loopback(host: str | None, port: int) -> bool:
    """True when a request's Host header names this listener.

    That is ``127.0.0.1:PORT`` or ``localhost:PORT``; the port may be left out only when
    it is HTTP's default, 80.
    """
    if host is None:
        return False
    names = {f"127.0.0.1:{port}", f"localhost:{port}"}
    if port == 80:
        names |= {"127.0.0.1", "localhost"}
    return host.strip().lower() in names


def parse_callback(query: str, check: CallbackCheck) -> tuple[dict[str, str], str | None]:
    """A callback's query parameters, and why it must be ignored (``None`` when acceptable).

    A parameter given more than once makes it unacceptable: RFC 6749 §3.1 forbids that, and
    taking either copy would let whoever appended one choose it (an ``iss`` or a ``state``).
    """
    values = parse_qs(query)
    params = {key: found[0] for key, found in values.items()}
    repeated = sorted(key for key, found in values.items() if len(found) > 1)
    if repeated:
        # Named only when it is a plain name: the key comes from whoever built the URL.
        name = repeated[0]
        what = f"The {name} parameter" if name.isascii() and name.isidentifier() else "A parameter"
        return params, f"{what} appears more than once (RFC 6749 §3.1)."
    return params, check_callback(params, check)


def check_callback(params: dict[str, str], check: CallbackCheck) -> str | None:
    """Why a callback must be ignored, or ``None`` when it is acceptable."""
    if params.get("state") != check.state:
        return "The state parameter is missing or does not match this login."
    issuer = params.get("iss")
    checks_issuer = check.issuer is not None and (issuer is not None or check.issuer_required)
    if checks_issuer and issuer != check.issuer:
        return "The iss parameter does not match the expected issuer (RFC 9207)."
    if "code" not in params and "error" not in params:
        return "The callback carries neither a code nor an error."
    return None


class LoopbackListener:
    """Listens on the loopback interface for exactly one acceptable callback.

    ``host`` is the name the redirect URI uses; ``definition`` names the definition in the
    error for a fixed ``port`` that is taken.
    """

    def __init__(
        self,
        check: CallbackCheck,
        port: int = 0,
        host: LoopbackHost = LoopbackHost.IP,
        definition: str | None = None,
    ) -> None:
        self._check = check
        self._host = host
        self._definition = definition
        self._accepted: queue.Queue[Callback] = queue.Queue()
        self._final_page: queue.Queue[bytes] = queue.Queue()
        self._claimed = threading.Lock()
        self._done = False
        self._finished = False
        self._answered = threading.Event()
        listener = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                listener._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                return  # The URL carries the code: never log requests.

        self._servers = self._bind(Handler, port)
        for server in self._servers:
            server.daemon_threads = True
        self._server = self._servers[0]
        self._threads = [
            threading.Thread(target=server.serve_forever, daemon=True) for server in self._servers
        ]

    def _bind(self, handler: type[BaseHTTPRequestHandler], port: int) -> list[ThreadingHTTPServer]:
        """The servers: 127.0.0.1, plus [::1] at the same port for ``localhost`` redirects."""
        tries = EPHEMERAL_TRIES if port == 0 and self._host is LoopbackHost.LOCALHOST else 1
        for attempt in range(tries):
            first = self._listen(_Server, ("127.0.0.1", port), handler, port)
            if self._host is not LoopbackHost.LOCALHOST:
                return [first]
            bound = int(first.server_address[1])
            try:
                second = _Server6(("::1", bound), handler)
            except OSError as error:
                if _ipv6_loopback_missing(error):
                    return [first]
                first.server_close()
                if port == 0 and attempt + 1 < tries:
                    continue  # that ephemeral port is taken on [::1]: take another
                raise self._port_error(f"[::1]:{bound}", error) from None
            return [first, second]
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def _listen(
        self,
        kind: type[ThreadingHTTPServer],
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        port: int,
    ) -> ThreadingHTTPServer:
        try:
            return kind(address, handler)
        except OSError as error:
            raise self._port_error(f"{address[0]}:{port}", error) from None

    def _port_error(self, where: str, error: OSError) -> UsageError:
        """What to do when the listener cannot bind: for a fixed port, the flag that moves it."""
        reason = error.strerror or str(error)
        if error.errno not in _PORT_TAKEN:
            return UsageError(f"cannot listen on {where} ({reason})")
        name = self._definition or "NAME"
        return PortInUseError(
            f"cannot listen on {where} for the login callback: the port is in use by another "
            f"program, or reserved ({reason})",
            hint="close the program that uses the port and try again, or register another "
            f"redirect URI port at the provider and run `tokenctl definitions configure {name} "
            "--client-id ID --redirect-port PORT` (oauth2.redirect_port)",
        )

    def expect_state(self, state: str) -> None:
        """Set the state to expect (it may embed the port, known only once bound)."""
        self._check = replace(self._check, state=state)

    @property
    def port(self) -> int:
        """The port actually bound (ephemeral unless one was given)."""
        return int(self._server.server_address[1])

    @property
    def redirect_uri(self) -> str:
        """The redirect URI to send in the authorization request."""
        return f"http://{self._host.value}:{self.port}{CALLBACK_PATH}"

    @property
    def addresses(self) -> list[str]:
        """Where it listens, as ``host:port`` (``[::1]:port`` for IPv6)."""
        return [
            f"[::1]:{self.port}"
            if server.address_family == socket.AF_INET6
            else f"127.0.0.1:{self.port}"
            for server in self._servers
        ]

    def start(self) -> LoopbackListener:
        """Start serving in background threads."""
        for thread in self._threads:
            thread.start()
        return self

    def wait(self, timeout: float) -> Callback | None:
        """The first acceptable callback, or ``None`` after ``timeout`` seconds."""
        try:
            return self._accepted.get(timeout=timeout)
        except queue.Empty:
            return None

    def finish(self, final_page: bytes) -> None:
        """Send the final page to the browser that delivered the accepted callback."""
        self._finished = True
        self._final_page.put(final_page)

    def close(self) -> None:
        """Stop listening, once the final page (if one was given) has been sent."""
        if self._finished and self._done:
            # Shutting down does not wait for the handler thread, and the process may exit
            # right after: wait (bounded, a browser may stop reading) until the page is out.
            self._answered.wait(FINAL_PAGE_SEND_WAIT)
        for server, thread in zip(self._servers, self._threads, strict=True):
            if thread.is_alive():
                server.shutdown()
            server.server_close()

    def __enter__(self) -> LoopbackListener:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _respond(self, handler: BaseHTTPRequestHandler, status: HTTPStatus, body: bytes) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", "text/html; charset=utf-8")
        handler.send_header("Content-Length", str(len(body)))
        handler.send_header("Cache-Control", "no-store")
        handler.send_header("Referrer-Policy", "no-referrer")
        handler.end_headers()
        handler.wfile.write(body)

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        # Only requests addressed to this listener: Host must name it, and the target must be
        # a path (an absolute "GET http://other/..." would make Host meaningless).
        hosts = handler.headers.get_all("Host") or []
        if (
            len(hosts) != 1
            or not host_is_loopback(hosts[0], self.port)
            or not handler.path.startswith("/")
        ):
            self._respond(
                handler,
                HTTPStatus.BAD_REQUEST,
                rejected_page("This request is not addressed to tokenctl's listener."),
            )
            return
        url = urlsplit(handler.path)
        if url.path != CALLBACK_PATH:
            self._respond(
                handler, HTTPStatus.NOT_FOUND, page("Not found", "<p>Nothing here.</p>", ok=False)
            )
            return
        params, reason = parse_callback(url.query, self._check)
        if reason is not None:
            self._respond(handler, HTTPStatus.BAD_REQUEST, rejected_page(reason))
            return
        with self._claimed:
            if self._done:
                self._respond(
                    handler, HTTPStatus.CONFLICT, rejected_page("This login was already completed.")
                )
                return
            self._done = True
        self._accepted.put(Callback(params))
        try:
            body = self._final_page.get(timeout=FINAL_PAGE_WAIT)
        except queue.Empty:
            body = page("tokenctl", "<p>Return to the terminal.</p>", ok=False)
        try:
            self._respond(handler, HTTPStatus.OK, body)
            handler.wfile.flush()
        finally:
            self._answered.set()
