"""A hostile IMAP server on 127.0.0.1 (TLS, a certificate made here, to pin): it answers one
mailbox of one message as a server does, except in the way its *mode* says:

- ``bad-uid``: the answer to the size FETCH names the UID ``abc``;
- ``bad-uidvalidity``: EXAMINE answers UIDVALIDITY ``abc``;
- ``huge-literal``: the message's FETCH announces a literal of 3 GiB, then sends it;
- ``endless-answers``: the message's FETCH is answered by FETCH responses without end;
- ``too-large``: the message is announced (RFC822.SIZE) at 300 MB;
- ``greeting-literal``: the greeting holds a literal of 3 GiB, then sends it;
- ``understated``: a message of 3 MiB announced at 1.5 MiB (as servers that estimate do);
- ``bad-folder-name``: LIST names, beside INBOX, a folder ``Q&A`` (not modified UTF-7);
- ``drip``: two messages; the first is answered at once, the second one byte every
  DRIP_SECONDS, until the client leaves (or DRIP_AT_MOST bytes);
- ``drip-greeting``: the greeting, one byte every DRIP_SECONDS.

It never sends more than SENT_AT_MOST bytes of a message (then closes): ``sent`` says how many
went out, so a test tells a client that stopped reading from one that read all it was given."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from tests.support.dovecot import make_certificate

MESSAGE = b"From: scam@example.net\r\nSubject: pay now\r\n\r\nPay.\r\n"
LARGE = MESSAGE + b"x" * (3 << 20)
SENT_AT_MOST = 200 << 20
_BLOCK = b"x" * (1 << 20)
DRIP_SECONDS = 0.05
DRIP_AT_MOST = 400  # bytes: 20 s


class HostileImap:
    def __init__(self, folder: Path, mode: str) -> None:
        cert, key, fingerprint = make_certificate(folder, "127.0.0.1")
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._context.load_cert_chain(cert, key)
        self.fingerprint = "SHA256:" + fingerprint.hex()
        self.mode = mode
        self.sent = 0  # bytes of message data sent
        self.bodies_asked = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"imaps://jane@127.0.0.1:{self.port}"

    def _serve(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                raw, _ = self._listener.accept()
                with contextlib.suppress(OSError), \
                        self._context.wrap_socket(raw, server_side=True) as connection:
                    connection.settimeout(30)
                    self._session(connection)

    def _session(self, connection: ssl.SSLSocket) -> None:
        if self.mode == "greeting-literal":
            connection.sendall(b"* OK {%d}\r\n" % (3 << 30))
            self._send_blocks(connection, b"")
            return
        if self.mode == "drip-greeting":
            self._drip(connection, b"* OK IMAP4rev1 ready" + b" " * DRIP_AT_MOST + b"\r\n")
            return
        connection.sendall(b"* OK IMAP4rev1 ready\r\n")
        reader = connection.makefile("rb")
        while line := reader.readline():
            tag, _, command = line.rstrip(b"\r\n").partition(b" ")
            answer = self._answer(connection, command.upper())
            if answer is None:
                return
            connection.sendall(answer + tag + b" OK done\r\n")

    def _answer(self, connection: ssl.SSLSocket, command: bytes) -> bytes | None:
        if command.startswith(b"CAPABILITY"):
            return b"* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n"
        if command.startswith((b"LOGIN", b"NOOP")):
            return b""
        if command.startswith(b"LIST"):
            other = b'* LIST () "/" Q&A\r\n' if self.mode == "bad-folder-name" else b""
            return b'* LIST () "/" INBOX\r\n' + other
        if command.startswith((b"EXAMINE", b"SELECT")):
            validity = b"abc" if self.mode == "bad-uidvalidity" else b"7"
            return (b"* 1 EXISTS\r\n* OK [UIDVALIDITY " + validity + b"] ok\r\n"
                    b"* OK [UIDNEXT 2] ok\r\n")
        if command.startswith(b"UID SEARCH"):
            return b"* SEARCH 1 2\r\n" if self.mode == "drip" else b"* SEARCH 1\r\n"
        if command.startswith(b"UID FETCH") and b"BODY.PEEK[]" not in command:
            uid = b"abc" if self.mode == "bad-uid" else b"1"
            size = {"too-large": 300_000_000, "understated": 3 << 19}.get(self.mode,
                                                                           len(MESSAGE))
            second = b"* 2 FETCH (UID 2 RFC822.SIZE %d)\r\n" % len(MESSAGE) \
                if self.mode == "drip" else b""
            return b"* 1 FETCH (UID %s RFC822.SIZE %d)\r\n" % (uid, size) + second
        if command.startswith(b"UID FETCH 2 ") and self.mode == "drip":
            self.bodies_asked += 1
            self._drip(connection)
            return None
        if command.startswith(b"UID FETCH"):
            self.bodies_asked += 1
            return self._bodies(connection)
        if command.startswith(b"LOGOUT"):
            connection.sendall(b"* BYE\r\n")
            return None
        return b""

    def _bodies(self, connection: ssl.SSLSocket) -> bytes | None:
        attributes = b'FLAGS () INTERNALDATE "07-Dec-2026 05:00:00 +0100" RFC822.SIZE %d' % \
            len(MESSAGE)
        if self.mode == "huge-literal":
            connection.sendall(b"* 1 FETCH (UID 1 %s BODY[] {%d}\r\n" % (attributes, 3 << 30))
            self._send_blocks(connection, b"")
            return None
        if self.mode == "endless-answers":
            self._send_blocks(connection, b"* 1 FETCH (UID 1 BODY[] {%d}\r\n" % len(_BLOCK),
                              b")\r\n")
            return None
        body = LARGE if self.mode == "understated" else MESSAGE
        return b"* 1 FETCH (UID 1 %s BODY[] {%d}\r\n%s)\r\n" % (attributes, len(body), body)

    def _drip(self, connection: ssl.SSLSocket, answer: bytes | None = None) -> None:
        """The second message's answer (or *answer*), one byte at a time, each well within any
        read timeout."""
        if answer is None:
            answer = b"* 2 FETCH (UID 2 BODY[] {%d}\r\n%s)\r\n" % (len(MESSAGE), MESSAGE)
        for byte in answer[:DRIP_AT_MOST]:
            connection.sendall(bytes([byte]))
            self.sent += 1
            time.sleep(DRIP_SECONDS)

    def _send_blocks(self, connection: ssl.SSLSocket, before: bytes, after: bytes = b"") -> None:
        while self.sent < SENT_AT_MOST:
            connection.sendall(before + _BLOCK + after)
            self.sent += len(_BLOCK)

    def close(self) -> None:
        with contextlib.suppress(OSError):  # wakes accept(), which close() alone does not
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._thread.join(timeout=10)


@contextlib.contextmanager
def hostile_imap(folder: Path, mode: str) -> Iterator[HostileImap]:
    server = HostileImap(folder, mode)
    try:
        yield server
    finally:
        server.close()
