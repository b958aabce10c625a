"""Small servers on 127.0.0.1: a bare TCP server for a misbehaving HTTP peer, a static site."""

from __future__ import annotations

import contextlib
import functools
import http.server
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path


@contextlib.contextmanager
def serving(handle: Callable[[socket.socket, threading.Event], None]) -> Iterator[int]:
    """Accept connections on a free port (yielded) and hand each to ``handle``.

    ``handle(connection, stop)`` runs on a thread of its own per connection and closes
    it; ``stop`` is set when the block ends, after which no connection is accepted.
    """
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=handle, args=(connection, stop), daemon=True).start()

    server = threading.Thread(target=accept, daemon=True)
    server.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        server.join(5)
        listener.close()


@contextlib.contextmanager
def serving_directory(root: Path, tls: ssl.SSLContext | None = None) -> Iterator[int]:
    """Serve the files under ``root`` on a free port (yielded), over TLS when ``tls`` is given."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            return

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(root))
    )
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
