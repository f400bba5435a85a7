"""The fixtures of the remote-capture tests: a real sshd on 127.0.0.1 (one per test module, so a
module's changes to its accounts' files stay its own) and a file there."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import sshd as sshd_support


@pytest.fixture(scope="module")
def server() -> Iterator[sshd_support.Sshd]:
    with sshd_support.running() as running:
        yield running


@pytest.fixture
def notes(server: sshd_support.Sshd) -> Path:
    """A file on the 'remote host', owned by the login user."""
    folder = server.root / f"data-{os.urandom(4).hex()}"
    folder.mkdir()
    (folder / "notes.txt").write_text("what the admin saw\n")
    server.owned(folder)
    return folder / "notes.txt"
