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
