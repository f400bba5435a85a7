"""An interrupted capture never leaves anything that looks like a bundle, and never a temp file."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.writing import being_written, writes_into

ENDING = [signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT]


@pytest.mark.parametrize("sig", ENDING)
def test_signal_mid_capture_leaves_nothing(tmp_path: Path, home: Path, keys: dict[str, Path],
                                           sig: signal.Signals) -> None:
    source = tmp_path / "big.bin"
    with open(source, "wb") as f:
        f.truncate(3 * 1024**3)  # sparse: costs no disk, but takes seconds to capture
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "evidencekit", "capture", str(source), "-R", str(keys["recipient"]),
         "--sign-key", str(keys["signer"]), "-o", str(out_dir / "case.evidence")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not writes_into(proc.pid, out_dir) and time.monotonic() < deadline:  # writing starts
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    assert os.listdir(out_dir) == []
    assert source.stat().st_size == 3 * 1024**3


def _start(*args: object, **kwargs: object) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "evidencekit", *map(str, args)],
                            text=True, **kwargs)  # type: ignore[call-overload]


def _when_writing(proc: subprocess.Popen[str], folder: Path) -> None:
    """Wait until *proc* writes its temporary file or staging folder into *folder*."""
    deadline = time.monotonic() + 60
    while not writes_into(proc.pid, folder) and time.monotonic() < deadline and \
            proc.poll() is None:
        time.sleep(0.02)
    assert proc.poll() is None, "the command ended before it could be interrupted"
    time.sleep(0.2)


@pytest.fixture(scope="module")
def large_bundle(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A bundle whose extract and reseal take seconds (a sparse 1 GiB file), and its keys."""
    from evidencekit.crypto import age
    from evidencekit.crypto.keys import SigningKey

    root = tmp_path_factory.mktemp("large")
    signer = SigningKey.generate("t")
    signer.save(root / "signer")
    identity = age.X25519Identity.generate()
    (root / "identity.txt").write_text(f"{identity}\n")
    (root / "recipient.txt").write_text(f"{identity.recipient()}\n")
    (root / "evidence").mkdir()
    with open(root / "evidence" / "disk.img", "wb") as f:
        f.truncate(1 << 30)
    proc = _start("capture", root / "evidence", "-R", root / "recipient.txt", "--sign-key",
                  root / "signer", "-o", root / "case.evidence",
                  env={**os.environ, "XDG_CONFIG_HOME": str(root)},
                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.wait(timeout=300) == 0
    return {"bundle": root / "case.evidence", "identity": root / "identity.txt",
            "recipient": root / "recipient.txt", "signer": root / "signer"}


@pytest.mark.parametrize("sig", ENDING)
def test_signal_mid_extract_leaves_no_decrypted_file(tmp_path: Path, home: Path,
                                                     large_bundle: dict[str, Path],
                                                     sig: signal.Signals) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    proc = _start("extract", large_bundle["bundle"], "-i", large_bundle["identity"], "-o",
                  out_dir / "opened", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _when_writing(proc, out_dir)
    staging = next(out_dir.iterdir())
    assert stat.S_IMODE(staging.stat().st_mode) == 0o700  # decrypted, unchecked: owner only
    for path in staging.rglob("*"):
        assert stat.S_IMODE(path.lstat().st_mode) in (0o600, 0o700), path
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    assert os.listdir(out_dir) == []


def test_the_next_extract_removes_what_a_kill_9_left(tmp_path: Path, home: Path,
                                                     large_bundle: dict[str, Path]) -> None:
    """SIGKILL cannot be answered: the staging folder (decrypted files, not all verified) stays.
    The next extract to the same folder finds its lock free, removes it and says so."""
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    args = ("extract", large_bundle["bundle"], "-i", large_bundle["identity"], "-o",
            out_dir / "opened")
    proc = _start(*args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _when_writing(proc, out_dir)
    proc.kill()
    proc.wait(timeout=60)
    [left] = list(out_dir.iterdir())
    assert left.name.startswith(".opened.") and left.name.endswith(".partial")
    again = subprocess.run([sys.executable, "-m", "evidencekit", *map(str, args), "--json"],
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["stale_staging_removed"] == [str(left)]
    assert os.listdir(out_dir) == ["opened"]


@pytest.mark.parametrize("sig", ENDING)
def test_signal_mid_reseal_leaves_nothing(tmp_path: Path, home: Path,
                                          large_bundle: dict[str, Path],
                                          sig: signal.Signals) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    proc = _start("reseal", large_bundle["bundle"], "-i", large_bundle["identity"], "-R",
                  large_bundle["recipient"], "--sign-key", large_bundle["signer"], "-o",
                  out_dir / "new.evidence", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _when_writing(proc, out_dir)
    [written] = being_written(proc.pid, out_dir)  # (a file without a name where it can)
    assert stat.S_IMODE(os.stat(written).st_mode) == 0o600
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert os.listdir(out_dir) == []


def test_sigpipe_from_a_closed_output_cleans_up(tmp_path: Path, home: Path,
                                                 large_bundle: dict[str, Path]) -> None:
    """``evidencekit extract … | head`` with head gone: the broken output ends the command."""
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    reader, writer = os.pipe()
    proc = _start("extract", large_bundle["bundle"], "-i", large_bundle["identity"], "-o",
                  out_dir / "opened", stdout=writer, stderr=subprocess.PIPE)
    os.close(writer)
    _when_writing(proc, out_dir)
    os.close(reader)  # the reader of its output goes away
    proc.send_signal(signal.SIGPIPE)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert os.listdir(out_dir) == []


def test_sigpipe_with_the_output_intact_does_not_stop_the_work(
        tmp_path: Path, home: Path, large_bundle: dict[str, Path]) -> None:
    """A pipe to a libmagic worker that died raises SIGPIPE too: that is no reason to stop."""
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    proc = _start("extract", large_bundle["bundle"], "-i", large_bundle["identity"], "-o",
                  out_dir / "opened", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _when_writing(proc, out_dir)
    proc.send_signal(signal.SIGPIPE)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    assert os.listdir(out_dir) == ["opened"]


@pytest.mark.parametrize(("fmt", "sig"), [("hashdeep", signal.SIGINT), ("e01", signal.SIGTERM)])
def test_signal_mid_export_leaves_nothing(tmp_path: Path, home: Path,
                                          large_bundle: dict[str, Path], fmt: str,
                                          sig: signal.Signals) -> None:
    """An export is staged next to its name from the start (E01: also ewfacquirestream's file):
    interrupted, neither is left, and no half-written export under the name."""
    if fmt == "e01":
        from tests.support.tools import require_tool

        require_tool("ewfacquirestream")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    proc = _start("export", large_bundle["bundle"], "-i", large_bundle["identity"], "--format",
                  fmt, "-o", out_dir / "export.out", stdout=subprocess.PIPE,
                  stderr=subprocess.PIPE)
    _when_writing(proc, out_dir)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert os.listdir(out_dir) == []
