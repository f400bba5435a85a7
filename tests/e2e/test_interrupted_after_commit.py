"""Once a command has made what it was asked to make (a custody event added, a folder extracted),
a signal or a reader that went away no longer turns it into "interrupted; nothing was written"
with exit 130: that would be false, and a script retrying on 130 would add the event twice.
The command finishes, says what it did when it still can, and exits with its true code."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.cli import run_cli
from tests.support.writing import writes_into


def _bundle(tmp_path: Path, keys: dict[str, Path]) -> Path:
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    (evidence / "chat.txt").write_text("pay now\n")
    bundle = tmp_path / "case.evidence"
    made = run_cli("capture", evidence, "-R", keys["recipient"], "--sign-key", keys["signer"],
                   "-o", bundle)
    assert made.code == 0, made.stderr
    return bundle


def _full_pipe() -> tuple[int, int]:
    """A pipe already full: the command's first line of output blocks until we read."""
    reader, writer = os.pipe()
    os.set_blocking(writer, False)
    try:
        while True:
            os.write(writer, b"\0" * 4096)
    except BlockingIOError:
        pass
    os.set_blocking(writer, True)
    return reader, writer


def _drain(reader: int) -> bytes:
    chunks = []
    while chunk := os.read(reader, 1 << 16):
        chunks.append(chunk)
    os.close(reader)
    return b"".join(chunks).lstrip(b"\0")


def _signal_once(proc: subprocess.Popen[bytes], done: object, sig: signal.Signals) -> None:
    """Wait until *done*() says the change is made (the command is then blocked writing its
    output to the full pipe), and send *sig*."""
    deadline = time.monotonic() + 60
    while not done() and time.monotonic() < deadline:  # type: ignore[operator]
        assert proc.poll() is None, "the command ended before it made its change"
        time.sleep(0.02)
    time.sleep(0.3)
    proc.send_signal(sig)


def test_a_signal_after_the_event_was_added_does_not_deny_it(
        tmp_path: Path, keys: dict[str, Path], home: Path) -> None:
    bundle = _bundle(tmp_path, keys)
    before = bundle.stat().st_ino
    reader, writer = _full_pipe()
    proc = subprocess.Popen([sys.executable, "-m", "evidencekit", "custody", "add", str(bundle),
                             "--action", "transferred", "--to", "Police", "--sign-key",
                             str(keys["signer"])], stdout=writer, stderr=subprocess.PIPE)
    os.close(writer)
    _signal_once(proc, lambda: bundle.stat().st_ino != before, signal.SIGTERM)
    output = _drain(reader).decode()
    stderr = proc.communicate(timeout=60)[1].decode()
    events = json.loads(run_cli("custody", "show", bundle, "--json").stdout)["custody"]
    assert [e["sequence"] for e in events] == [1, 2]
    assert "nothing was written" not in stderr
    assert proc.returncode == 0, stderr
    assert "Added custody event #2" in output


def test_a_hang_up_after_the_folder_was_extracted_does_not_deny_it(
        tmp_path: Path, keys: dict[str, Path], home: Path) -> None:
    bundle = _bundle(tmp_path, keys)
    opened = tmp_path / "opened"
    reader, writer = _full_pipe()
    proc = subprocess.Popen([sys.executable, "-m", "evidencekit", "extract", str(bundle), "-i",
                             str(keys["identity"]), "-o", str(opened)],
                            stdout=writer, stderr=subprocess.PIPE)
    os.close(writer)
    _signal_once(proc, opened.exists, signal.SIGHUP)
    output = _drain(reader).decode()
    stderr = proc.communicate(timeout=60)[1].decode()
    assert "nothing was extracted" not in stderr and "nothing was written" not in stderr
    assert proc.returncode == 0, stderr
    assert "Extracted 1 file into" in output
    assert (opened / "data" / "evidence" / "chat.txt").read_text() == "pay now\n"


def test_a_reader_gone_from_both_outputs_is_no_verification_failure(
        tmp_path: Path, keys: dict[str, Path], home: Path) -> None:
    """``evidencekit extract … 2>&1 | head -c1``: exit 1 would say the evidence is bad."""
    bundle = _bundle(tmp_path, keys)
    opened = tmp_path / "opened"
    reader, writer = os.pipe()
    os.close(reader)  # gone before the command writes a word
    proc = subprocess.Popen([sys.executable, "-m", "evidencekit", "extract", str(bundle), "-i",
                             str(keys["identity"]), "-o", str(opened)],
                            stdout=writer, stderr=writer)
    os.close(writer)
    assert proc.wait(timeout=60) == 0
    assert (opened / "data" / "evidence" / "chat.txt").read_text() == "pay now\n"


def test_record_without_a_usable_signing_key_extracts_nothing(
        tmp_path: Path, keys: dict[str, Path], home: Path) -> None:
    """The signing key is needed at the end, so it is checked before the work: not after the
    folder was made, leaving it there under an error and exit 2."""
    bundle = _bundle(tmp_path, keys)
    opened = tmp_path / "opened"
    result = run_cli("extract", bundle, "-i", keys["identity"], "-o", opened, "--record",
                     "--sign-key", tmp_path / "no-such-key", "--json")
    assert result.code == 2, result.stderr
    assert "signing key not found" in result.json()["error"]["message"]
    assert not opened.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_waiting_record_can_still_be_stopped_and_says_what_was_made(
        tmp_path: Path, keys: dict[str, Path], home: Path) -> None:
    """extract --record waits for another writer after the folder is made: Ctrl-C there stops
    the wait (no event), and the message says the folder was extracted."""
    bundle = _bundle(tmp_path, keys)
    opened = tmp_path / "opened"
    with open(bundle, "rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # another evidencekit command adding to it
        proc = subprocess.Popen([sys.executable, "-m", "evidencekit", "extract", str(bundle),
                                 "-i", str(keys["identity"]), "-o", str(opened), "--record",
                                 "--sign-key", str(keys["signer"])],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert proc.stderr is not None
        deadline = time.monotonic() + 60
        while "waiting" not in proc.stderr.readline():
            assert time.monotonic() < deadline and proc.poll() is None
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert str(opened) in stderr and "nothing was written" not in stderr
    assert (opened / "data" / "evidence" / "chat.txt").read_text() == "pay now\n"
    events = json.loads(run_cli("custody", "show", bundle, "--json").stdout)["custody"]
    assert [e["action"] for e in events] == ["captured"]


def test_a_capture_that_first_made_the_personal_key_can_still_be_stopped(
        tmp_path: Path, keys: dict[str, Path], home: Path) -> None:
    """The personal signing key a capture makes first is no result of the command: Ctrl-C
    after it must still stop the capture and leave no bundle."""
    source = tmp_path / "disk.img"
    with open(source, "wb") as f:
        f.truncate(3 << 30)  # sparse: no disk used, seconds to capture
    out = tmp_path / "out"
    out.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "evidencekit", "capture", str(source), "-R",
                             str(keys["recipient"]), "-o", str(out / "case.evidence")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not writes_into(proc.pid, out) and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    stderr = proc.communicate(timeout=60)[1].decode()
    assert "personal signing key" in stderr  # made on the way
    assert proc.returncode == 130, stderr
    assert os.listdir(out) == []


@pytest.mark.slow  # a 1 GiB capture (sparse)
def test_nohup_is_obeyed(tmp_path: Path, keys: dict[str, Path], home: Path) -> None:
    """``nohup evidencekit capture … &`` (SIGHUP ignored before the start, as nohup does, and
    SIGINT as a shell does for background jobs): logging out must not stop the capture. The
    handlers that clean up on SIGHUP/SIGINT are only installed for signals not ignored."""
    source = tmp_path / "disk.img"
    with open(source, "wb") as f:
        f.truncate(1 << 30)  # sparse: no disk used, a second or more to capture
    out = tmp_path / "out"
    out.mkdir()

    def like_nohup() -> None:
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    proc = subprocess.Popen([sys.executable, "-m", "evidencekit", "capture", str(source), "-R",
                             str(keys["recipient"]), "--sign-key", str(keys["signer"]), "-o",
                             str(out / "case.evidence")], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, preexec_fn=like_nohup)
    deadline = time.monotonic() + 60
    while not writes_into(proc.pid, out) and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    proc.send_signal(signal.SIGHUP)
    proc.send_signal(signal.SIGINT)
    stderr = proc.communicate(timeout=120)[1].decode()
    assert proc.returncode == 0, stderr
    assert os.listdir(out) == ["case.evidence"]
