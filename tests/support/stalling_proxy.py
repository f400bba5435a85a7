"""A TCP proxy on 127.0.0.1 in front of a test server that can go slow or stall, as a store or
a network does: what timeouts must notice (a stall) and must not trip over (a slow link).

:func:`tcp_proxy` is a context manager: it listens before it returns, and stops (closing every
connection, joining every thread) whatever happens. Each connection it accepts is forwarded to
*upstream* (``host:port`` on 127.0.0.1; None: nothing behind, the proxy is a server that
accepts and never answers), the client's bytes at most *rate* bytes a second; once a connection
has carried more than *stall_after* bytes from the client, the proxy stops reading it (nothing
more goes through, nothing comes back, the connection stays open) while new connections carry
on: a part of an upload stalls, a small request (abort) still gets through. With
*lose_first_answer_to* (a regular expression), the first request whose bytes match it reaches
the server, but its answer is never passed back (the connection stays open, silent): a request
the server carried out whose answer was lost, which the client then tries again. With
*flip_after*, one bit of the client's bytes is flipped in flight just after each connection
has carried that many (a body altered on the way: what a store must refuse).
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from tests.support.serving import accept_until

_BLOCK = 16 << 10


@dataclass
class Proxy:
    endpoint: str  # http://127.0.0.1:PORT
    stalls: int = 0  # connections stalled so far
    answers_lost: int = 0
    flipped: int = 0  # bytes altered in flight so far
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def stalled(self) -> None:
        with self._lock:
            self.stalls += 1


@contextmanager
def tcp_proxy(upstream: int | None, *, stall_after: int | None = None,
              rate: int | None = None,
              lose_first_answer_to: bytes | None = None,
              flip_after: int | None = None) -> Iterator[Proxy]:
    listener = socket.create_server(("127.0.0.1", 0))
    # a small receive buffer: the client's bytes wait at its end, as behind a slow link
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)
    listener.settimeout(0.05)
    stopping = threading.Event()
    proxy = Proxy(f"http://127.0.0.1:{listener.getsockname()[1]}")
    sockets: list[socket.socket] = []
    threads: list[threading.Thread] = []
    muted: set[int] = set()  # ids of the client sockets whose answers are dropped

    def start(target: object, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        threads.append(thread)
        thread.start()

    def upward(client: socket.socket, server: socket.socket | None) -> None:
        carried = 0
        with contextlib.suppress(OSError):
            while not stopping.is_set():
                if stall_after is not None and carried > stall_after:
                    proxy.stalled()
                    stopping.wait()
                    return
                data = client.recv(_BLOCK)
                if not data:
                    break
                if flip_after is not None and carried <= flip_after < carried + len(data):
                    data = _flipped(data, flip_after - carried)
                    with proxy._lock:
                        proxy.flipped += 1
                carried += len(data)
                if lose_first_answer_to is not None and re.search(lose_first_answer_to, data):
                    with proxy._lock:
                        if not proxy.answers_lost:
                            proxy.answers_lost += 1
                            muted.add(id(client))
                if server is not None:
                    server.sendall(data)
                if rate:
                    time.sleep(len(data) / rate)
        if server is not None:
            with contextlib.suppress(OSError):
                server.shutdown(socket.SHUT_WR)

    def downward(server: socket.socket, client: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := server.recv(_BLOCK):
                if id(client) not in muted:
                    client.sendall(data)
        with contextlib.suppress(OSError):
            client.shutdown(socket.SHUT_WR)

    def take(client: socket.socket) -> None:
        client.settimeout(None)
        sockets.append(client)
        server = None
        if upstream is not None:
            server = socket.create_connection(("127.0.0.1", upstream))
            sockets.append(server)
            start(downward, server, client)
        start(upward, client, server)

    start(accept_until, listener, stopping, take)
    try:
        yield proxy
    finally:
        stopping.set()
        threads[0].join(timeout=5)  # accept(): no new connection after this
        for s in [*sockets, listener]:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()
        for thread in threads:
            thread.join(timeout=5)


def _flipped(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1:]


@contextmanager
def unreachable() -> Iterator[str]:
    """``http://127.0.0.1:PORT`` where a connection is never made, as behind a firewall that
    drops packets: a listening socket that never accepts, its queue already full (Linux then
    drops further SYNs, so connect() waits for its timeout instead of being refused)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    filler = socket.create_connection(listener.getsockname(), timeout=5)
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        filler.close()
        listener.close()
