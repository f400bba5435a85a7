"""The SFTP client (evidencekit.remote.sftp) against a server that lies
(tests/support/hostile_sftp.py), run here as a process of its own, without ssh."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from evidencekit.remote import sftp

WORKTREE = Path(__file__).resolve().parents[2]


@pytest.fixture
def endless_folder() -> Iterator[sftp.SftpSession]:
    process = subprocess.Popen([sys.executable, "-m", "tests.support.hostile_sftp",
                                "endless-folder"], cwd=WORKTREE, stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE)
    session = sftp.SftpSession(process, stall=10)
    try:
        yield session
    finally:
        process.kill()
        session.close()


def test_a_folder_listed_without_end_is_cut_not_held_whole(
        endless_folder: sftp.SftpSession, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sftp, "MOST_ENTRIES", 1000)
    with pytest.raises(sftp.SftpError, match="listed more than 1,000 entries in it"):
        endless_folder.listdir(b"/x")


def _session(mode: str) -> Iterator[sftp.SftpSession]:
    process = subprocess.Popen([sys.executable, "-m", "tests.support.hostile_sftp", mode],
                               cwd=WORKTREE, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    session = sftp.SftpSession(process, stall=10)
    try:
        yield session
    finally:
        process.kill()
        session.close()


def test_a_folder_of_endless_names_is_cut_by_their_bytes_not_only_their_count(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """MOST_ENTRIES bounds the count, not the memory: a server listing names of up to a packet
    each (1 MiB) made ten million of them ten terabytes. 300 names of 60,000 bytes here."""
    monkeypatch.setattr(sftp, "MOST_NAME_BYTES", 4 << 20, raising=False)
    for session in _session("long-names"):
        with pytest.raises(sftp.SftpError, match="more than 4 MiB of names in it"):
            session.listdir(b"/x")


def test_an_answer_cut_short_is_an_sftp_error_not_a_crash() -> None:
    """Attributes that announce a size and hold no bytes for it raised struct.error, which no
    caller expects ('internal error', exit 5)."""
    for session in _session("truncated"):
        with pytest.raises(sftp.SftpError, match="a truncated SFTP packet"):
            session.lstat(b"/x/f.txt")
        assert session.lstat(b"/x").mode == 0o040755  # the session is still in step
