"""A test server on a thread of its own: answering for the length of a ``with`` block, then
stopped and closed whatever happened inside (the fixtures' rule)."""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def serving(server: socketserver.BaseServer, poll_interval: float = 0.5) -> Iterator[None]:
    thread = threading.Thread(target=server.serve_forever,
                              kwargs={"poll_interval": poll_interval}, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def accept_until(listener: socket.socket, stop: threading.Event,
                 take: Callable[[socket.socket], None]) -> None:
    """The accepting loop of a hand-made server: each connection to *listener* is given to
    *take*, until *stop* is set (seen within the listener's timeout) or the listener is closed."""
    while not stop.is_set():
        try:
            connection, _ = listener.accept()
        except TimeoutError:
            continue
        except OSError:
            return
        take(connection)
