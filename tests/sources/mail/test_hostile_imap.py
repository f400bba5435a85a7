"""capture --imap against a hostile server (tests/support/hostile_imap.py), through the real
command: what is not IMAP is said plainly (exit 2, no traceback, no bundle), what the server
sends is bounded in memory whatever it announces, and a message too large to fetch is
recorded as such (exit 3)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from evidencekit.crypto.keys import SigningKey
from evidencekit.sources.mail.fetch import LARGEST_MESSAGE
from tests.support.cli import Result, run_cli
from tests.support.hostile_imap import HostileImap, hostile_imap
from tests.support.schemas import assert_valid


def capture(tmp_path: Path, server: HostileImap) -> Result:
    (tmp_path / "password").write_text("secret\n")
    SigningKey.generate("examiner@test").save(tmp_path / "signer")
    return run_cli("capture", "--case", "MAIL-1", "-p", "--sign-key", tmp_path / "signer",
                   "-o", tmp_path / "mail.evidence", "--json", "--imap", server.url,
                   "--imap-fingerprint", server.fingerprint,
                   "--imap-password-file", tmp_path / "password",
                   env={"EVIDENCEKIT_PASSPHRASE": "test passphrase of the bundle",
                        "XDG_STATE_HOME": str(tmp_path / "state"),
                        "XDG_CONFIG_HOME": str(tmp_path / "config")})


@pytest.mark.parametrize("mode", ["bad-uid", "bad-uidvalidity"])
def test_a_number_that_is_not_one_is_said_plainly(tmp_path: Path, mode: str) -> None:
    """Before: 'internal error: ValueError: invalid literal for int()' (exit 5)."""
    with hostile_imap(tmp_path, mode) as server:
        done = capture(tmp_path, server)
    assert done.code == 2, done.stderr
    error = done.json()["error"]["message"]
    assert "did not answer as an IMAP server does" in error and "no bundle" in error
    assert not (tmp_path / "mail.evidence").exists()


@pytest.mark.parametrize("mode", ["huge-literal", "endless-answers", "greeting-literal"])
def test_what_the_server_sends_is_bounded_whatever_it_announces(tmp_path: Path,
                                                                mode: str) -> None:
    """A literal of 3 GiB was read whole into memory (3.2 GB resident); FETCH responses
    without end filled memory (9 GB in 25 s) until the system killed the capture; a greeting
    holding a literal was read whole before the certificate's pin was looked at (so by anyone
    in between). The server here gives up after 200 MiB: before, all of it was read."""
    with hostile_imap(tmp_path, mode) as server:
        done = capture(tmp_path, server)
        sent = server.sent
    assert done.code == 2, done.stderr
    said = done.json()["error"]["message"]
    assert "more than" in said
    if mode == "greeting-literal":  # it named neither host nor port
        assert said.startswith("127.0.0.1 port ") and "while connecting" in said, said
    assert sent < 32 << 20
    assert not (tmp_path / "mail.evidence").exists()


def test_a_message_announced_too_large_is_recorded_not_fetched(tmp_path: Path) -> None:
    """Its bytes would all be held in memory: it is listed as not fetched (exit 3)."""
    with hostile_imap(tmp_path, "too-large") as server:
        done = capture(tmp_path, server)
        asked = server.bodies_asked
    assert done.code == 3, done.stderr
    assert asked == 0
    problems = json.dumps(done.json()["problems"])
    assert "300,000,000 bytes" in problems and f"{LARGEST_MESSAGE:,}" in problems


def test_a_message_larger_than_announced_within_reason_is_captured(tmp_path: Path) -> None:
    """Some servers (Exchange) announce an estimate: twice the announced size is taken."""
    with hostile_imap(tmp_path, "understated") as server:
        done = capture(tmp_path, server)
    assert done.code == 0, done.stderr


def test_a_folder_name_that_is_not_modified_utf7_is_recorded_the_others_captured(
        tmp_path: Path) -> None:
    """A folder named Q&A as sent (not modified UTF-7) stopped the whole capture (exit 2); now
    INBOX is captured and Q&A is listed as not captured, its name as sent (exit 3)."""
    with hostile_imap(tmp_path, "bad-folder-name") as server:
        done = capture(tmp_path, server)
        asked = server.bodies_asked
    assert done.code == 3, done.stderr
    assert asked == 1  # INBOX's message
    problems = json.dumps(done.json()["problems"])
    assert "the folder 'Q&A' was not captured" in problems and "modified UTF-7" in problems
    extracted = run_cli("extract", tmp_path / "mail.evidence", "-o", tmp_path / "out",
                        env={"EVIDENCEKIT_PASSPHRASE": "test passphrase of the bundle"})
    assert extracted.code in (0, 3), extracted.stderr
    [server_json] = (tmp_path / "out").rglob("*.server.json")
    document = json.loads(server_json.read_bytes())
    assert_valid(document, "mail-server")
    listed = {f["name_utf7"]: f for f in document["folders_listed"]}
    assert "not_captured" not in listed["INBOX"]
    assert "not valid modified UTF-7" in listed["Q&A"]["not_captured"]
    assert list((tmp_path / "out").rglob("*.INBOX.1.eml"))


def test_a_server_dripping_its_answer_is_given_up_in_time_the_rest_kept(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One byte at a time, each within the 300 s read timeout, kept a capture waiting for days.
    Now an answer slower than ANSWER_MIN_RATE after ANSWER_GRACE is given up (exit 2, as a
    connection lost), and the message fetched before is kept for the next run. (Short times
    here: the rule is the same.)"""
    from evidencekit.sources.mail import fetch, parse_account
    from evidencekit.sources.mail.account import MailError, Password
    from evidencekit.sources.mail.resume import ResumeState, derive_key
    from evidencekit.sources.mail.server import Trust, parse_fingerprint
    from evidencekit.sources.mail.source import MailSource, Selection

    monkeypatch.setattr(fetch, "BATCH_COUNT", 1)  # a FETCH for each message
    monkeypatch.setattr(fetch, "ANSWER_GRACE", 0.3)
    monkeypatch.setattr(fetch, "ANSWER_MIN_RATE", 100)  # the server drips 20 bytes a second
    with hostile_imap(tmp_path, "drip") as server:
        account = parse_account(server.url)
        state = ResumeState(account, derive_key(b"k" * 32, account), tmp_path / "state")
        source = MailSource(account, Password("secret"), Selection(),
                            Trust(parse_fingerprint(server.fingerprint)), resume=state)
        source.connect()
        started = time.monotonic()
        with pytest.raises(MailError) as raised:
            list(source.entries(set()))
        took = time.monotonic() - started
        dripped = server.sent
    assert took < 1.5 and dripped < 40
    said = raised.value.message
    assert "answered too slowly while fetching messages of 'INBOX'" in said
    assert "slower than 100 bytes a second after 0.3 s" in said
    assert "the 1 message fetched so far are kept" in said
    again = ResumeState(account, derive_key(b"k" * 32, account), tmp_path / "state")
    kept = again.folder_state("INBOX", 7)
    assert 1 in kept and 2 not in kept
    again.close()


def test_a_greeting_dripped_is_given_up_in_time(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The greeting is read before any command: its time is bounded the same way."""
    from evidencekit.clock import system_clock
    from evidencekit.sources.mail import fetch, parse_account
    from evidencekit.sources.mail.account import MailError
    from evidencekit.sources.mail.server import Trust, open_connection, parse_fingerprint

    monkeypatch.setattr(fetch, "ANSWER_GRACE", 0.3)
    monkeypatch.setattr(fetch, "ANSWER_MIN_RATE", 100)
    with hostile_imap(tmp_path, "drip-greeting") as server:
        started = time.monotonic()
        with pytest.raises(MailError, match=r"slower than 100 bytes a second after 0\.3 s") \
                as raised:
            open_connection(account := parse_account(server.url),
                            Trust(parse_fingerprint(server.fingerprint)), system_clock)
        took = time.monotonic() - started
    assert took < 1.5
    # it said neither host nor port, where the other errors of connecting say both
    assert raised.value.message.startswith(
        f"{account.host} port {account.port} answered too slowly while connecting: ")
