"""STARTTLS against a server (or someone in between) that sends answers in clear around the
STARTTLS answer, the classic command injection of STARTTLS (CVE-2011-0411 and its kin): what
came in clear, before or after "OK begin TLS", is never read as what the server said over TLS,
and nothing but CAPABILITY and STARTTLS is sent before TLS. A server on 127.0.0.1 with a
certificate made here, pinned."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from evidencekit.clock import system_clock
from evidencekit.sources.mail.account import Account, MailError
from evidencekit.sources.mail.server import Trust, open_connection
from tests.support.dovecot import make_certificate

INJECTED = b"* CAPABILITY IMAP4rev1 AUTH=PLAIN INJECTED\r\n"


def _certificate(folder: Path) -> tuple[ssl.SSLContext, bytes]:
    cert, key, fingerprint = make_certificate(folder, "127.0.0.1")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context, fingerprint


class Injecting:
    """Greets, offers STARTTLS, and answers it with answers in clear *before* or *after* its
    OK (in the same packet), then speaks TLS; keeps what it received, in clear and in TLS."""

    def __init__(self, context: ssl.SSLContext, where: str) -> None:
        self._context, self._where = context, where
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.clear = b""
        self.secured = b""
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        with contextlib.suppress(OSError):
            connection, _ = self._listener.accept()
            connection.settimeout(20)
            connection.sendall(b"* OK IMAP4rev1 ready\r\n")
            reader = connection.makefile("rb")
            while line := reader.readline():
                self.clear += line
                tag = line.split(b" ", 1)[0]
                if b"STARTTLS" in line.upper():
                    ok = tag + b" OK begin TLS\r\n"
                    connection.sendall(INJECTED + ok if self._where == "before"
                                       else ok + INJECTED + b"* OK [ALERT] in clear\r\n")
                    self._secured(connection)
                    return
                connection.sendall(b"* CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED\r\n" + tag
                                   + b" OK done\r\n")

    def _secured(self, connection: socket.socket) -> None:
        tls = self._context.wrap_socket(connection, server_side=True)
        reader = tls.makefile("rb")
        while line := reader.readline():
            self.secured += line
            tag = line.split(b" ", 1)[0]
            if b"LOGOUT" in line.upper():
                tls.sendall(b"* BYE\r\n" + tag + b" OK bye\r\n")
                return
            tls.sendall(b"* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n" + tag + b" OK done\r\n")

    def close(self) -> None:
        self._listener.close()
        self._thread.join(timeout=10)


@pytest.fixture
def tls(tmp_path: Path) -> tuple[ssl.SSLContext, bytes]:
    return _certificate(tmp_path)


@pytest.fixture(params=["before", "after"])
def server(request: pytest.FixtureRequest,
           tls: tuple[ssl.SSLContext, bytes]) -> Iterator[Injecting]:
    running = Injecting(tls[0], request.param)
    try:
        yield running
    finally:
        running.close()


def test_answers_in_clear_around_starttls_are_not_believed(
        server: Injecting, tls: tuple[ssl.SSLContext, bytes]) -> None:
    account = Account("imap://jane@127.0.0.1", "jane", "127.0.0.1", server.port, starttls=True)
    try:
        client, facts = open_connection(account, Trust(pinned=tls[1]), system_clock)
    except MailError as exc:  # refusing is as good as discarding
        assert "nothing was sent" in exc.message or "cannot connect" in exc.message
        return
    try:
        assert facts["capability_before_login"] == ["AUTH=PLAIN", "IMAP4REV1"]
        assert facts["tls"]["starttls"] is True
        assert not any(b"INJECTED" in b"".join(answer) for answer
                       in client._imap.untagged_responses.values() if isinstance(answer, list))
        assert "INJECTED" not in " ".join(client._imap.capabilities)
    finally:
        client.logout()
    assert [line.split(b" ", 1)[1] for line in server.clear.splitlines()] == \
        [b"CAPABILITY", b"STARTTLS"]
    assert b"CAPABILITY" in server.secured
