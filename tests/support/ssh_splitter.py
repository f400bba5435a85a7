"""A TCP proxy on 127.0.0.1 that sends ssh-keyscan to one SSH server and every other client to
another: a host that shows the key it is pinned by to the look-up that checks the pin, and
another key to the connection that follows (what ssh's own host key check must catch).

OpenSSH's client sends its version line as soon as it connects; ssh-keyscan waits for the
server's first: a client silent for a second is ssh-keyscan.
:func:`splitter` listens before it returns and stops (closing every connection, joining every
thread) whatever happens.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from tests.support.serving import accept_until

_BLOCK = 16 << 10
_SILENCE = 1.0  # seconds


@contextmanager
def splitter(keyscan_port: int, others_port: int) -> Iterator[int]:
    """The proxy's port."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()
    threads: list[threading.Thread] = []
    sockets: list[socket.socket] = []

    def take(client: socket.socket) -> None:
        sockets.append(client)
        thread = threading.Thread(target=route, args=(client,), daemon=True)
        threads.append(thread)
        thread.start()

    def route(client: socket.socket) -> None:
        with contextlib.suppress(OSError):
            client.settimeout(_SILENCE)
            try:
                first = client.recv(_BLOCK)
            except TimeoutError:
                first = None
            client.settimeout(None)
            if first == b"":
                return
            upstream = socket.create_connection(
                ("127.0.0.1", keyscan_port if first is None else others_port))
            sockets.append(upstream)
            if first:
                upstream.sendall(first)
            back = threading.Thread(target=pipe, args=(upstream, client), daemon=True)
            threads.append(back)
            back.start()
            pipe(client, upstream)

    def pipe(source: socket.socket, target: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while block := source.recv(_BLOCK):
                target.sendall(block)
        with contextlib.suppress(OSError):
            target.shutdown(socket.SHUT_WR)

    acceptor = threading.Thread(target=accept_until, args=(listener, stop, take), daemon=True)
    acceptor.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        stop.set()
        listener.close()
        for open_socket in sockets:
            with contextlib.suppress(OSError):
                open_socket.close()
        acceptor.join(timeout=5)
        for thread in threads:
            thread.join(timeout=5)
