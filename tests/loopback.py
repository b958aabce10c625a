"""A bare TCP server on 127.0.0.1 for tests that need a misbehaving HTTP peer."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator


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
