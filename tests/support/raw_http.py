"""A server on 127.0.0.1 that answers each connection with bytes the test scripts, as a hostile
or broken site would (framing that lies, a reset mid-answer, interim answers): what no
well-behaved HTTP server library can be made to send.

:func:`raw_server` is a context manager: it waits until it listens, and stops (closing every
connection) whatever happens. Each connection gets the next of *answers* (the last one repeats);
an answer is a list of byte strings sent one after another, ``RESET`` for a TCP reset instead of
a close, ``PAUSE`` for a short pause (a second packet).
"""

from __future__ import annotations

import contextlib
import itertools
import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from tests.support.serving import accept_until

RESET = b"\x00reset"
PAUSE = b"\x00pause"


@dataclass
class RawSite:
    base: str  # http://127.0.0.1:PORT
    requests: list[bytes] = field(default_factory=list)


@contextmanager
def raw_server(answers: list[list[bytes]]) -> Iterator[RawSite]:
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)
    stopping = threading.Event()
    site = RawSite(f"http://127.0.0.1:{listener.getsockname()[1]}")

    def answer(connection: socket.socket, parts: list[bytes]) -> None:
        with contextlib.suppress(OSError):  # the client hung up (its limits do that)
            answer_on(connection, parts)

    def answer_on(connection: socket.socket, parts: list[bytes]) -> None:
        with connection:
            connection.settimeout(5)
            request = b""
            while b"\r\n\r\n" not in request:
                piece = connection.recv(65536)
                if not piece:
                    return
                request += piece
            site.requests.append(request)
            for part in parts:
                if part == PAUSE:
                    stopping.wait(0.1)
                elif part == RESET:
                    connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                          struct.pack("ii", 1, 0))
                    return
                else:
                    connection.sendall(part)
            stopping.wait(0.05)  # let the bytes leave before the close

    served = itertools.count()

    def take(connection: socket.socket) -> None:
        parts = answers[min(next(served), len(answers) - 1)]
        threading.Thread(target=answer, args=(connection, parts), daemon=True).start()

    thread = threading.Thread(target=accept_until, args=(listener, stopping, take), daemon=True)
    thread.start()
    try:
        yield site
    finally:
        stopping.set()
        thread.join(timeout=5)
        listener.close()
