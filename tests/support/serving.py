"""A test server on a thread of its own: answering for the length of a ``with`` block, then
stopped and closed whatever happened inside (the fixtures' rule)."""

from __future__ import annotations

import socketserver
import threading
from collections.abc import Iterator
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
