"""capture --remote when the disk here fills at the last step, and what it trusts: the real CLI
against a real OpenSSH server on 127.0.0.1 (tests/support/sshd.py)."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import sshd as sshd_support

EVIDENCEKIT = ""  # this worktree's evidencekit as the login user runs it (set by the fixture)


@pytest.fixture(scope="module")
def server() -> Iterator[sshd_support.Sshd]:
    global EVIDENCEKIT
    with sshd_support.running() as running:
        EVIDENCEKIT = running.evidencekit_command()
        yield running


@pytest.fixture
def notes(server: sshd_support.Sshd) -> Path:
    folder = server.root / f"data-{os.urandom(4).hex()}"
    folder.mkdir()
    (folder / "notes.txt").write_text("what the admin saw\n")
    server.owned(folder)
    return folder / "notes.txt"


def _capture(server: sshd_support.Sshd, keys: dict[str, Path], out: Path, *args: object,
             file_size_limit: int | None = None) -> subprocess.CompletedProcess[str]:
    """capture --remote --json; with *file_size_limit*, no file it writes may grow past that
    many bytes (RLIMIT_FSIZE: a write past it fails with EFBIG, as one on a full disk fails)."""
    def limited() -> None:
        if file_size_limit is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))

    config = out.parent / "config"
    config.mkdir(exist_ok=True)
    return subprocess.run(
        [sys.executable, "-m", "evidencekit", "capture", "--remote", server.remote,
         "--ssh-identity", str(server.client_key), "--remote-command", EVIDENCEKIT,
         "-R", str(keys["recipient"]), "--sign-key", str(keys["signer"]), "--case", "IR-7",
         "-o", str(out), "--json", *map(str, args)],
        env={**os.environ, "XDG_CONFIG_HOME": str(config),
             "PYTHONPATH": str(Path(__file__).parents[2])},
        capture_output=True, text=True, timeout=300, preexec_fn=limited)


def test_a_disk_that_fills_as_the_received_event_is_added_is_said_as_that(
        server: sshd_support.Sshd, notes: Path, keys: dict[str, Path], tmp_path: Path) -> None:
    """The bundle arrives whole, then the 'received' event does not fit: the event's write was
    cut short unnoticed, and the capture was refused as a bundle that 'did not verify once its
    custody event was added' (exit 1, as for a tampered one)."""
    first = _capture(server, keys, tmp_path / "first.evidence", "--host-key",
                     server.fingerprint, notes)
    assert first.returncode == 0, first.stderr
    arrived = json.loads(first.stdout)["remote"]["bytes"]  # the same files make the same size
    out = tmp_path / "full.evidence"
    done = _capture(server, keys, out, "--host-key", server.fingerprint, notes,
                    file_size_limit=arrived)
    assert done.returncode == 2, done.stderr
    error = json.loads(done.stdout)["error"]["message"]
    assert "could not write" in error and "nothing was kept" in error, error
    assert not [n for n in os.listdir(tmp_path) if "full.evidence" in n]
