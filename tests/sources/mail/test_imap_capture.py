"""capture --imap against a real Dovecot (tests/support/dovecot.py), through the real command:
several folders (one not ASCII), a message with 8-bit headers, a 20 MB attachment; nothing
changed on the server; a dropped connection resumed; a wrong password; a certificate that is
not the one pinned. One server for the whole module."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import dovecot
from tests.support.by_hand import by_hand, passed, toolbox_in
from tests.support.dovecot import PASSWORD, TOKEN, Dovecot, deliver, message
from tests.support.schemas import assert_valid
from tests.support.tools import require_tool

BIG = os.urandom(15 << 20)  # base64: some 20 MB of message
EIGHT_BIT = ("Subject: Überweisung für Sie\nFrom: Bänk <bank@example.net>\n"
             "To: jane@example.org\nDate: Sun, 06 Dec 2026 10:00:00 -0500\n\nGeld.\n"
             ).encode()


def big_message() -> bytes:
    encoded = base64.encodebytes(BIG)
    return (b"From: scam@example.net\nTo: jane@example.org\nSubject: invoice attached\n"
            b"Date: Mon, 07 Dec 2026 07:00:00 +0000\nMIME-Version: 1.0\n"
            b"Content-Type: multipart/mixed; boundary=XX\n\n--XX\nContent-Type: text/plain\n\n"
            b"See attachment.\n--XX\nContent-Type: application/octet-stream\n"
            b"Content-Transfer-Encoding: base64\n\n" + encoded + b"--XX--\n")


def fill(server: Dovecot) -> None:
    inbox = server.maildir
    deliver(inbox, "seen", message("first, already read"), flags="S", received=1_796_000_000)
    deliver(inbox, "unseen", message("second, never opened"), received=1_796_000_100)
    deliver(inbox, "8bit", EIGHT_BIT, flags="F", received=1_796_000_200)
    deliver(inbox, "big", big_message(), received=1_796_000_300)
    deliver(server.folder("Junk"), "junk", message("You won"), received=1_796_000_400)
    deliver(server.folder("Re&AOc-u"), "recu", message("dans Reçu"), received=1_796_000_500)
    # a folder inside another (Maildir++: the hierarchy delimiter is ".")
    deliver(server.folder("Re&AOc-u.Archiv"), "archived", message("archivé"),
            received=1_796_000_550)
    # the last test of the module deletes one of these two while capturing
    deliver(server.folder("Vanishing"), "stays", message("stays"), received=1_796_000_600)
    deliver(server.folder("Vanishing"), "goes", message("goes"), received=1_796_000_700)


@pytest.fixture(scope="module")
def server() -> Iterator[Dovecot]:
    with dovecot.running(fill) as running:
        yield running


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """No terminal, an isolated configuration and resume state, the password in a file."""
    (tmp_path / "password").write_text(PASSWORD + "\n")
    state = tmp_path / "state"
    config = tmp_path / "config"
    config.mkdir(exist_ok=True)
    return {**os.environ, "XDG_STATE_HOME": str(state), "XDG_CONFIG_HOME": str(config),
            "EVIDENCEKIT_PASSPHRASE": "test passphrase of the bundle"}


def capture(tmp_path: Path, env: dict[str, str], *args: object, url: str,
            name: str = "mail.evidence", login: tuple[object, ...] = (),
            protection: tuple[object, ...] = ("-p",)) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "evidencekit", "capture", "--case", "MAIL-1", *protection,
               "--sign-key", _signer(tmp_path), "-o", tmp_path / name, "--json",
               "--imap", url, *(login or ("--imap-password-file", tmp_path / "password")), *args]
    return subprocess.run([str(a) for a in command], capture_output=True, text=True, env=env,
                          stdin=subprocess.DEVNULL, timeout=300)


def _signer(tmp_path: Path) -> Path:
    from evidencekit.crypto.keys import SigningKey

    path = tmp_path / "signer"
    if not path.exists():
        SigningKey.generate("examiner@test").save(path)
    return path


def pin(server: Dovecot) -> str:
    return "SHA256:" + server.fingerprint.hex()


def extracted(tmp_path: Path, env: dict[str, str], bundle: Path, *how: str,
              name: str = "out") -> Path:
    out = tmp_path / name
    done = subprocess.run([sys.executable, "-m", "evidencekit", "extract", str(bundle), "-o",
                           str(out), "--passphrase-file", str(_passphrase(tmp_path, env)), *how],
                          capture_output=True, text=True, env=env, timeout=300,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    return out


def _passphrase(tmp_path: Path, env: dict[str, str]) -> Path:
    path = tmp_path / "bundle-passphrase"
    path.write_text(env["EVIDENCEKIT_PASSPHRASE"] + "\n")
    return path


def flags(record: dict[str, Any]) -> list[str]:
    """The message's flags but \\Recent (a session flag: recorded as served, but whether it is
    still set depends on whether another session has opened the folder)."""
    return [flag for flag in record["flags"] if flag != "\\Recent"]


def crlf(data: bytes) -> bytes:
    return data.replace(b"\n", b"\r\n")


class PrefixedFolder:
    """A mail folder's files in data/ (``ACCOUNT.FOLDER.NAME``): ``inbox / "3.eml"``."""

    def __init__(self, data: Path, prefix: str) -> None:
        self._data = data
        self._prefix = prefix

    def __truediv__(self, name: str) -> Path:
        return self._data / f"{self._prefix}.{name}"


def test_a_mailbox_is_captured_whole_and_left_unchanged(server: Dovecot, tmp_path: Path,
                                                         env: dict[str, str]) -> None:
    before = server.file_names()
    done = capture(tmp_path, env, "--imap-fingerprint", pin(server), url=server.url)
    assert done.returncode == 0, done.stderr
    assert server.file_names() == before  # no flag changed: \Seen would rename the file (:2,S)
    report = json.loads(done.stdout)
    assert_valid(report, "capture")
    assert report["mail"]["messages"] == 9 and report["mail"]["fetched"] == 9
    data = extracted(tmp_path, env, tmp_path / "mail.evidence") / "data"
    # flat in data/, no folder the manifest does not list (FORMAT.md §4.3): ACCOUNT.FOLDER.UID
    account = "jane@127.0.0.1"
    assert sorted(p.name for p in data.iterdir()) == sorted([
        f"{account}.server.json",
        *(f"{account}.INBOX.{n}" for n in ("1.eml", "1.json", "2.eml", "2.json", "3.eml",
                                            "3.json", "4.eml", "4.json", "folder.json")),
        *(f"{account}.{folder}.{n}" for folder in ("Junk", "Reçu", "Reçu∕Archiv")
          for n in ("1.eml", "1.json", "folder.json")),
        *(f"{account}.Vanishing.{n}" for n in ("1.eml", "1.json", "2.eml", "2.json",
                                                "folder.json"))])
    inbox = PrefixedFolder(data, f"{account}.INBOX")
    # exactly the bytes served: Dovecot keeps LF and serves CRLF
    assert (inbox / "3.eml").read_bytes() == crlf(EIGHT_BIT)
    assert (inbox / "4.eml").read_bytes() == crlf(big_message())
    record = json.loads((inbox / "3.json").read_bytes())
    assert record["sha256"] == hashlib.sha256(crlf(EIGHT_BIT)).hexdigest()
    assert flags(record) == ["\\Flagged"] and record["size"] == record["rfc822_size"]
    assert record["internaldate"].endswith(("+0000", "+0100", "-0000")) or \
        record["internaldate"][-5] in "+-"
    assert record["internaldate_rfc3339"] is not None and record["modseq"] is not None
    assert record["headers"]["subject"] == "Überweisung für Sie"
    assert record["uidvalidity"] > 0 and record["uid"] == 3 and record["folder"] == "INBOX"
    assert flags(json.loads((inbox / "1.json").read_bytes())) == ["\\Seen"]
    assert flags(json.loads((inbox / "2.json").read_bytes())) == []
    recu = json.loads((data / f"{account}.Reçu.1.json").read_bytes())
    assert (recu["folder"], recu["folder_utf7"]) == ("Reçu", "Re&AOc-u")
    assert recu["file"] == f"{account}.Reçu.1.eml"
    archived = json.loads((data / f"{account}.Reçu∕Archiv.folder.json").read_bytes())
    assert (archived["folder"], archived["delimiter"]) == ("Reçu.Archiv", ".")
    folder = json.loads((inbox / "folder.json").read_bytes())
    assert folder["matched"] == folder["stored"] == 4 and folder["failed"] == []
    facts = json.loads((data / f"{account}.server.json").read_bytes())
    assert facts["server"]["connected_to"] == "127.0.0.1"
    assert facts["server"]["tls"]["chain"][0]["sha256"] == server.fingerprint.hex()
    assert facts["server"]["greeting"].startswith("* OK") or "Dovecot" in \
        facts["server"]["greeting"]
    assert "IMAP4REV1" in facts["capability"]
    for path in data.rglob("*.json"):  # every document against its schema (docs/schemas/)
        document = json.loads(path.read_bytes())
        assert_valid(document, {"server.json": "mail-server", "folder.json": "mail-folder"}
                     .get(path.name.rsplit(".", 2)[-2] + ".json", "mail-message"))
    # the password is nowhere: not in the bundle's public parts, not in anything it holds (the
    # bag as stored: the manifest and its command line too), not in what the command said
    secret = PASSWORD.encode()
    assert secret not in (tmp_path / "mail.evidence").read_bytes()
    stored = extracted(tmp_path, env, tmp_path / "mail.evidence", "--as-stored", name="bag")
    manifest = next(stored.rglob("manifest.json"))
    assert b"--imap-password-file" in manifest.read_bytes()  # the command line is in it
    for path in [*(tmp_path / "out").rglob("*"), *stored.rglob("*")]:
        if path.is_file():
            assert secret not in path.read_bytes(), path
    assert PASSWORD not in done.stdout + done.stderr
    # the report lists the messages: date, sender, subject, SHA-256; and the full headers of
    # the one marked, 8-bit bytes as sent
    made = subprocess.run([sys.executable, "-m", "evidencekit", "report",
                           str(tmp_path / "mail.evidence"), "--passphrase-file",
                           str(_passphrase(tmp_path, env)), "-o", str(tmp_path / "report.html"),
                           "--full-headers", "*.INBOX.3.eml"],
                          capture_output=True, text=True, env=env, timeout=300,
                          stdin=subprocess.DEVNULL)
    assert made.returncode == 0, made.stderr
    html = (tmp_path / "report.html").read_text()
    assert "Überweisung für Sie" in html and "jane@127.0.0.1.INBOX.3.eml" in html
    assert record["sha256"] in html and "You won" in html  # every message listed
    assert html.count("<pre class=headers>") == 1
    assert "<pre class=headers>Subject: Überweisung für Sie\nFrom: Bänk &lt;bank@example.net" \
        in html
    assert not any(Path(env["XDG_STATE_HOME"]).rglob("*.state"))  # resume state gone
    assert not any(Path(env["XDG_STATE_HOME"]).rglob("*.lock"))


def test_a_second_capture_of_the_same_mailbox_stops_and_says_why(
        server: Dovecot, tmp_path: Path, env: dict[str, str]) -> None:
    """Two captures of one account at once would both append to its resume state: the second
    stops before it logs in, and says so."""
    from evidencekit.sources.mail import parse_account
    from evidencekit.sources.mail.resume import ResumeState

    running = ResumeState(parse_account(server.url), b"k" * 32,
                          Path(env["XDG_STATE_HOME"]) / "evidencekit" / "mail-resume")
    running.lock()  # as the first capture holds it
    try:
        second = capture(tmp_path, env, "--imap-fingerprint", pin(server), url=server.url)
    finally:
        running.discard()
    assert second.returncode == 2, second.stderr
    error = json.loads(second.stdout)["error"]
    assert "another capture of the mailbox jane@127.0.0.1 is running" in error["message"]
    assert not (tmp_path / "mail.evidence").exists()


class Cutter:
    """A TCP relay on 127.0.0.1 to the server that cuts both sides once *limit* bytes came
    from the server (a connection dropped in the middle of a FETCH)."""

    def __init__(self, port: int, limit: int) -> None:
        self._port = port
        self._limit = limit
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.cut = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        with self._listener:
            self._listener.settimeout(60)
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self._port))
            threading.Thread(target=self._pump, args=(client, upstream, None), daemon=True
                             ).start()
            self._pump(upstream, client, self._limit)

    def _pump(self, source: socket.socket, sink: socket.socket, limit: int | None) -> None:
        passed = 0
        try:
            while data := source.recv(65536):
                if limit is not None and passed + len(data) > limit:
                    self.cut = True
                    break
                sink.sendall(data)
                passed += len(data)
        except OSError:
            pass
        for side in (source, sink):
            with contextlib.suppress(OSError):
                side.shutdown(socket.SHUT_RDWR)
            side.close()

    def close(self) -> None:
        self._listener.close()
        self._thread.join(timeout=10)


def test_a_dropped_connection_is_resumed_without_fetching_again(
        server: Dovecot, tmp_path: Path, env: dict[str, str]) -> None:
    cutter = Cutter(server.port, limit=4 << 20)  # within the 20 MB message, after the others
    try:
        url = f"imaps://jane@127.0.0.1:{cutter.port}"
        dropped = capture(tmp_path, env, "--imap-fingerprint", pin(server), "--folder", "INBOX",
                          url=url)
    finally:
        cutter.close()
    assert cutter.cut
    assert dropped.returncode == 2, dropped.stderr
    error = json.loads(dropped.stdout)["error"]
    assert "connection" in error["message"] and "3 messages fetched so far are kept, encrypted, in" in \
        error["message"], error
    assert not (tmp_path / "mail.evidence").exists()
    assert list(Path(env["XDG_STATE_HOME"]).rglob("*.state"))
    again = capture(tmp_path, env, "--imap-fingerprint", pin(server), "--folder", "INBOX",
                    url=server.url)
    assert again.returncode == 0, again.stderr
    mail = json.loads(again.stdout)["mail"]
    assert (mail["messages"], mail["fetched"], mail["from_earlier_run"]) == (4, 1, 3)
    inbox = PrefixedFolder(extracted(tmp_path, env, tmp_path / "mail.evidence") / "data",
                           "jane@127.0.0.1.INBOX")
    assert (inbox / "3.eml").read_bytes() == crlf(EIGHT_BIT)
    assert (inbox / "4.eml").read_bytes() == crlf(big_message())
    assert json.loads((inbox / "1.json").read_bytes())["from_earlier_run"] is True
    assert json.loads((inbox / "4.json").read_bytes())["from_earlier_run"] is False
    assert not any(Path(env["XDG_STATE_HOME"]).rglob("*.state"))


def test_an_oauth2_token_logs_in_with_xoauth2_and_is_kept_nowhere(
        server: Dovecot, tmp_path: Path, env: dict[str, str]) -> None:
    (tmp_path / "token").write_text(TOKEN + "\n")
    done = capture(tmp_path, env, "--imap-fingerprint", pin(server), "--folder", "Junk",
                   url=server.url, login=("--imap-token-file", tmp_path / "token"))
    assert done.returncode == 0, done.stderr
    data = extracted(tmp_path, env, tmp_path / "mail.evidence", "--as-stored", name="bag")
    facts = json.loads(next(data.rglob("*.server.json")).read_bytes())
    assert facts["authentication"] == "xoauth2" and "AUTH=XOAUTH2" in \
        facts["server"]["capability_before_login"]
    assert TOKEN.encode() not in (tmp_path / "mail.evidence").read_bytes()
    for path in data.rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path
    assert TOKEN not in done.stdout + done.stderr
    (tmp_path / "token").write_text("ya29.not-a-valid-token\n")
    refused = capture(tmp_path, env, "--imap-fingerprint", pin(server), url=server.url,
                      login=("--imap-token-file", tmp_path / "token"), name="no.evidence")
    assert refused.returncode == 2 and "refused the login" in refused.stdout


def test_a_message_is_checked_by_hand_with_tar_age_and_sha256sum(
        server: Dovecot, tmp_path: Path, env: dict[str, str]) -> None:
    from evidencekit.crypto import age

    for tool in ("tar", "age", "sha256sum", "sh"):
        require_tool(tool)
    identity = age.X25519Identity.generate()
    (tmp_path / "identity.txt").write_text(f"{identity}\n")
    done = capture(tmp_path, env, "--imap-fingerprint", pin(server), "--folder", "Junk",
                   url=server.url, protection=("-r", str(identity.recipient())))
    assert done.returncode == 0, done.stderr
    unpacked = tmp_path / "by-hand"
    unpacked.mkdir()
    subprocess.run(["sh", "-c", 'tar -xOf "$1" payload.age | age -d -i "$2" | tar -xf - -C "$3"',
                    "sh", str(tmp_path / "mail.evidence"), str(tmp_path / "identity.txt"),
                    str(unpacked)], check=True, timeout=300)
    bag = unpacked / "bag"
    eml = "data/jane@127.0.0.1.Junk.1.eml"
    found = subprocess.run(["sha256sum", "--", eml], cwd=bag, check=True, capture_output=True,
                           text=True, timeout=60).stdout.split()[0]
    record = json.loads((bag / "data/jane@127.0.0.1.Junk.1.json").read_bytes())
    assert found == record["sha256"] == hashlib.sha256(crlf(message("You won"))).hexdigest()
    assert f"{found}  {eml}\n" in (bag / "manifest-sha256.txt").read_text()
    checked = subprocess.run(["sha256sum", "-c", "manifest-sha256.txt"], cwd=bag,
                             capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_a_wrong_password_is_refused_plainly(server: Dovecot, tmp_path: Path,
                                             env: dict[str, str]) -> None:
    (tmp_path / "password").write_text("not the password\n")
    done = capture(tmp_path, env, "--imap-fingerprint", pin(server), url=server.url)
    assert done.returncode == 2
    error: dict[str, Any] = json.loads(done.stdout)["error"]
    assert "refused the login of jane" in error["message"] and "app password" in error["hint"]
    assert "Traceback" not in done.stderr and not (tmp_path / "mail.evidence").exists()


def test_a_certificate_that_is_not_the_pinned_one_is_refused(server: Dovecot, tmp_path: Path,
                                                              env: dict[str, str]) -> None:
    done = capture(tmp_path, env, "--imap-fingerprint", "SHA256:" + "00" * 32, url=server.url)
    assert done.returncode == 2
    message_text = json.loads(done.stdout)["error"]["message"]
    assert "not the one pinned" in message_text and server.fingerprint.hex()[:2].upper() in \
        message_text and "nothing was sent" in message_text
    assert not (tmp_path / "mail.evidence").exists()


def test_starttls_secures_a_plain_imap_connection_before_the_login(
        server: Dovecot, tmp_path: Path, env: dict[str, str]) -> None:
    """imap:// (port 143 style): STARTTLS first, the pinned certificate checked, then the
    login; what the server said in clear is not what is recorded as its capabilities."""
    done = capture(tmp_path, env, "--imap-fingerprint", pin(server), "--folder", "Junk",
                   url=server.starttls_url)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["mail"]["account"] == server.starttls_url
    data = extracted(tmp_path, env, tmp_path / "mail.evidence")
    facts = json.loads(next((data / "data").glob("*.server.json")).read_bytes())
    assert_valid(facts, "mail-server")
    tls = facts["server"]["tls"]
    assert tls["starttls"] is True and tls["version"].startswith("TLSv1.")
    assert tls["chain"][0]["sha256"] == server.fingerprint.hex()
    before_login = facts["server"]["capability_before_login"]
    assert "STARTTLS" not in before_login and "LOGINDISABLED" not in before_login  # after TLS
    assert "AUTH=PLAIN" in before_login
    wrong = capture(tmp_path, env, "--imap-fingerprint", "SHA256:" + "00" * 32,
                    url=server.starttls_url, name="wrong.evidence")
    assert wrong.returncode == 2
    assert "not the one pinned" in json.loads(wrong.stdout)["error"]["message"]


class NoStarttls:
    """An IMAP server on 127.0.0.1 that does not offer STARTTLS (or one whose offer someone in
    between removed): it greets, answers CAPABILITY without it, and keeps what it was sent."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.received = b""
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        with contextlib.suppress(OSError):
            connection, _ = self._listener.accept()
            with connection:
                connection.settimeout(20)
                connection.sendall(b"* OK IMAP4rev1 ready\r\n")
                while line := connection.recv(4096):
                    self.received += line
                    tag = line.split(b" ", 1)[0]
                    if b"CAPABILITY" in line.upper():
                        connection.sendall(b"* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n" + tag +
                                           b" OK done\r\n")
                    elif b"LOGOUT" in line.upper():
                        connection.sendall(b"* BYE\r\n" + tag + b" OK bye\r\n")
                        return
                    else:
                        connection.sendall(tag + b" OK fine, go on\r\n")

    def close(self) -> None:
        self._listener.close()
        self._thread.join(timeout=10)


def test_a_server_without_starttls_is_never_sent_the_login(tmp_path: Path,
                                                           env: dict[str, str]) -> None:
    fake = NoStarttls()
    try:
        done = capture(tmp_path, env, url=f"imap://jane@127.0.0.1:{fake.port}")
    finally:
        fake.close()
    assert done.returncode == 2, done.stderr
    error = json.loads(done.stdout)["error"]
    assert "does not offer STARTTLS" in error["message"] and "imaps://" in error["hint"]
    assert b"CAPABILITY" in fake.received.upper()
    assert b"LOGIN" not in fake.received.upper() and b"AUTHENTICATE" not in fake.received.upper()
    assert PASSWORD.encode() not in fake.received and b"jane" not in fake.received
    assert not (tmp_path / "mail.evidence").exists()


def test_a_self_signed_certificate_is_not_trusted_without_a_pin(
        server: Dovecot, tmp_path: Path, env: dict[str, str]) -> None:
    done = capture(tmp_path, env, url=server.url)
    assert done.returncode == 2
    assert "is not trusted" in json.loads(done.stdout)["error"]["message"]


def test_folders_and_a_search_choose_the_messages(server: Dovecot, tmp_path: Path,
                                                  env: dict[str, str]) -> None:
    done = capture(tmp_path, env, "--imap-fingerprint", pin(server), "--folder", "Junk",
                   "--folder", "Reçu", "--search", "SUBJECT won", url=server.url)
    assert done.returncode == 0, done.stderr
    mail = json.loads(done.stdout)["mail"]
    assert [(f["name"], f["messages"]) for f in mail["folders"]] == [("Junk", 1), ("Reçu", 0)]
    later = capture(tmp_path, env, "--imap-fingerprint", pin(server), "--since", "2030-01-01",
                    url=server.url, name="later.evidence")
    assert later.returncode == 0 and json.loads(later.stdout)["mail"]["messages"] == 0
    missing = capture(tmp_path, env, "--imap-fingerprint", pin(server), "--folder", "Nope",
                      url=server.url, name="other.evidence")
    assert missing.returncode == 2 and "no folder 'Nope'" in missing.stdout


class Answers:
    """The guided session's prompter: each question answered by the first rule whose words it
    contains (each rule's answers used in turn), else skipped with Enter."""

    def __init__(self, rules: list[tuple[str, list[str]]]) -> None:
        self.rules = rules
        self.said: list[str] = []
        self.asked: list[str] = []

    def say(self, text: str) -> None:
        self.said.append(text)

    def ask(self, question: str, hint: str = "") -> str:
        self.asked.append(question)
        for words, answers in self.rules:
            if words in question and answers:
                return answers.pop(0)
        return ""

    secret = ask


def test_the_guided_session_offers_the_mailbox(server: Dovecot, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from evidencekit.capture import CaseInfo
    from evidencekit.cli import guided
    from evidencekit.crypto.keys import SigningKey
    from evidencekit.sources.mail import Trust
    from evidencekit.verify import verify

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    home = tmp_path / "home"
    home.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    SigningKey.generate("jane").save(tmp_path / "signer")
    wrong = Answers([("Change the list?", ["jane@127.0.0.1", "jane@127.0.0.1", ""]),
                     ("IMAP server", [f"127.0.0.1:{server.port}"] * 2),
                     ("Password for", ["wrong", PASSWORD]),
                     ("Passphrase (hidden", ["correct pony stapler sunrise"]),
                     ("same passphrase", ["correct pony stapler sunrise"]),
                     ("Make the bundle now?", ["yes"])])
    defaults = guided.GuidedDefaults(home=home, system="Linux", cwd=out,
                                     mail_trust=Trust(server.fingerprint))
    code = guided.guided_capture(wrong, defaults, CaseInfo("EK-MAIL", "Jane"), "EK-MAIL",  # type: ignore[arg-type]
                                 tmp_path / "signer", None)
    said = "\n".join(wrong.said)
    assert code == 0, said
    assert "refused the login" in said and "app password" in said  # the first password
    assert "the e-mails of jane@127.0.0.1 will be copied" in said
    assert PASSWORD not in said
    [bundle] = out.glob("*.evidence")
    from evidencekit.crypto import age

    report = verify(bundle, [age.ScryptIdentity(b"correct pony stapler sunrise")])
    assert report.ok, report.findings.items
    assert report.manifest is not None
    [source] = [s for s in report.manifest.get("sources") if s.get("kind") == "mail"]
    assert source["details"]["messages"] == 9 and source["given"].endswith(
        f"@127.0.0.1:{server.port}")


def test_a_message_deleted_while_capturing_is_recorded_not_lost(server: Dovecot, tmp_path: Path
                                                                ) -> None:
    """Listed and sized, then deleted on the server before its batch is fetched: an empty
    entry whose error says so, the folder's document lists it, and the capture is incomplete.
    (Run last: it deletes a message of the module's server.)"""
    from evidencekit.capture import CaptureRequest, CaseInfo, capture
    from evidencekit.crypto import age
    from evidencekit.crypto.keys import SigningKey
    from evidencekit.extract import extract
    from evidencekit.sources.mail import MailSource, Password, Selection, Trust, parse_account
    from evidencekit.verify import verify

    source = MailSource(parse_account(server.url), Password(PASSWORD), Selection(("Vanishing",)),
                        Trust(server.fingerprint))
    source.connect()
    [going] = (server.folder("Vanishing") / "cur").glob("*.goes.*")
    going.unlink()
    identity = age.X25519Identity.generate()
    result = capture(CaptureRequest([], tmp_path / "v.evidence", CaseInfo("V-1", "Jane"),
                                    [identity.recipient()], SigningKey.generate(), ["test"],
                                    more_sources=(source,)))
    assert not result.seal.complete and result.seal.counts["errors"] == 1
    report = verify(tmp_path / "v.evidence", [identity])
    assert report.ok, report.findings.items
    assert report.manifest is not None
    [gone] = [e for e in report.manifest.entries() if e["bag_path"].endswith(".Vanishing.2.eml")]
    assert "no longer on the server" in gone["error"] and gone["size"] == 0
    extract(tmp_path / "v.evidence", tmp_path / "out", [identity])
    folder = json.loads((tmp_path / "out/data/jane@127.0.0.1.Vanishing.folder.json").read_bytes())
    assert (folder["matched"], folder["stored"]) == (2, 1)
    assert [f["uid"] for f in folder["failed"]] == [2]


def test_a_mailbox_bundle_is_verified_by_hand(server: Dovecot, tmp_path: Path,
                                              env: dict[str, str]) -> None:
    """FORMAT.md §7.2's procedure, run literally (tests/support/by_hand), on a mailbox of a
    folder inside another and folders whose names are not ASCII: the bag's data/ must hold no
    folder that manifest.json does not list."""
    from evidencekit.crypto import age

    identity = age.X25519Identity.generate()
    (tmp_path / "identity.txt").write_text(f"{identity}\n")
    done = capture(tmp_path, env, "--imap-fingerprint", pin(server), "--folder", "Reçu",
                   "--folder", "Reçu.Archiv", "--folder", "Junk", url=server.url,
                   protection=("-r", str(identity.recipient())))
    assert done.returncode == 0, done.stderr
    assert [f["name"] for f in json.loads(done.stdout)["mail"]["folders"]] == \
        ["Reçu", "Reçu.Archiv", "Junk"]
    output = passed(by_hand(toolbox_in(tmp_path / "toolbox"), tmp_path / "mail.evidence",
                            "-i", tmp_path / "identity.txt"))
    assert "the 10 files of manifest-sha256.txt are there" in output
    assert "the 0 folders manifest.json lists are there, and no others" in output
    data = tmp_path / "mail.evidence.checked" / "payload" / "bag" / "data"
    assert not [p for p in data.iterdir() if p.is_dir()]
    # evidencekit says the same; extract gives the same flat files; the exports read them
    key = ("-i", str(tmp_path / "identity.txt"))
    checked = evidencekit(env, "verify", tmp_path / "mail.evidence", *key)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    evidencekit(env, "extract", tmp_path / "mail.evidence", *key, "-o", tmp_path / "out",
                ok=True)
    account = "jane@127.0.0.1"
    assert sorted(p.name for p in (tmp_path / "out" / "data").iterdir()) == sorted([
        f"{account}.server.json",
        *(f"{account}.{folder}.{n}" for folder in ("Junk", "Reçu", "Reçu∕Archiv")
          for n in ("1.eml", "1.json", "folder.json"))])
    archived = tmp_path / "out" / "data" / f"{account}.Reçu∕Archiv.1.eml"
    assert archived.read_bytes() == crlf(message("archivé"))
    record = json.loads(archived.with_suffix(".json").read_bytes())
    assert (record["folder"], record["file"]) == ("Reçu.Archiv", archived.name)
    digest = hashlib.sha256(archived.read_bytes()).hexdigest()
    for form, name in (("hashdeep", "list.txt"), ("case", "case.jsonld"), ("dfxml", "f.xml")):
        evidencekit(env, "export", tmp_path / "mail.evidence", *key, "--format", form, "-o",
                    tmp_path / name, ok=True)
        exported = (tmp_path / name).read_text(encoding="utf-8")
        assert digest in exported and "Reçu∕Archiv.1.eml" in exported, form


def evidencekit(env: dict[str, str], *args: object, ok: bool = False
                ) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "evidencekit", *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=300,
                          stdin=subprocess.DEVNULL)
    assert not ok or done.returncode == 0, done.stdout + done.stderr
    return done
