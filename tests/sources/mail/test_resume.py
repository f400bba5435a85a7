"""sources/mail/resume.py: the encrypted state of messages an interrupted capture fetched."""

from __future__ import annotations

import os
from pathlib import Path

from evidencekit.sources.mail import parse_account
from evidencekit.sources.mail.resume import ResumeState, derive_key

ACCOUNT = parse_account("imaps://jane@mail.example.com")


def state(root: Path, seed: bytes = b"s" * 32) -> ResumeState:
    return ResumeState(ACCOUNT, derive_key(seed, ACCOUNT), root)


def test_messages_kept_are_read_back_by_the_next_run_only(tmp_path: Path) -> None:
    first = state(tmp_path).folder_state("INBOX", 7)
    first.add(3, 111, b"message three")
    first.add(9, 222, b"nine" * 1000)
    first.flush()
    first.close()
    again = state(tmp_path).folder_state("INBOX", 7)
    assert 3 in again and 9 in again and 4 not in again and len(again) == 2
    assert again.read(3) == (b"message three", 111) and again.read(9) == (b"nine" * 1000, 222)
    assert len(state(tmp_path).folder_state("INBOX", 8)) == 0  # another UIDVALIDITY
    assert len(state(tmp_path).folder_state("Junk", 7)) == 0
    assert len(state(tmp_path, b"t" * 32).folder_state("INBOX", 7)) == 0  # another key


def test_nothing_is_kept_in_clear(tmp_path: Path) -> None:
    kept = state(tmp_path).folder_state("INBOX", 1)
    kept.add(1, 1, b"From: scam@example.net\r\nSubject: pay now")
    kept.close()
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert b"scam@example.net" not in path.read_bytes()
            assert b"INBOX" not in os.fsencode(path)


def test_a_record_cut_short_is_dropped_and_the_rest_kept(tmp_path: Path) -> None:
    kept = state(tmp_path).folder_state("INBOX", 1)
    kept.add(1, 1, b"one")
    kept.add(2, 2, b"two" * 100)
    kept.close()
    [path] = list(tmp_path.rglob("*.state"))
    path.write_bytes(path.read_bytes()[:-10])  # a crash in the middle of the second record
    again = state(tmp_path).folder_state("INBOX", 1)
    assert 1 in again and 2 not in again
    again.add(2, 3, b"fetched again")
    again.close()
    last = state(tmp_path).folder_state("INBOX", 1)
    assert last.read(2) == (b"fetched again", 3) and last.read(1) == (b"one", 1)


def test_discard_removes_everything(tmp_path: Path) -> None:
    whole = state(tmp_path)
    whole.folder_state("INBOX", 1).add(1, 1, b"x")
    whole.discard()
    assert not whole.folder.exists()


def test_one_capture_of_an_account_at_a_time(tmp_path: Path) -> None:
    """A second capture of the same account, here in another process, stops at once with a
    plain message; once the first has finished (discard) or ended, the account is free."""
    import subprocess
    import sys

    import pytest

    from evidencekit.sources.mail.resume import StateBusy

    first = state(tmp_path)
    first.lock()
    other = subprocess.run(
        [sys.executable, "-c",
         "import sys; from pathlib import Path; from tests.sources.mail.test_resume import state;"
         "from evidencekit.sources.mail.resume import StateBusy\n"
         "try: state(Path(sys.argv[1])).lock()\n"
         "except StateBusy as e: print(e); sys.exit(7)", str(tmp_path)],
        capture_output=True, text=True, timeout=60, cwd=Path(__file__).parents[3])
    assert other.returncode == 7, other.stderr
    assert "another capture of the mailbox jane@mail.example.com is running" in other.stdout
    with pytest.raises(StateBusy):
        state(tmp_path).lock()  # in the same process too (a guided session)
    first.discard()
    assert not any(tmp_path.rglob("*.lock"))
    second = state(tmp_path)
    second.lock()  # free again
    second.discard()


def test_what_is_kept_is_private_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        kept = state(tmp_path).folder_state("INBOX", 1)
        kept.add(1, 1, b"a message")
        kept.close()
    finally:
        os.umask(old)
    [path] = list(tmp_path.rglob("*.state"))
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
