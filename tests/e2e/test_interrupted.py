"""An interrupted capture never leaves anything that looks like a bundle, and never a temp file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
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
    while not any(out_dir.iterdir()) and time.monotonic() < deadline:  # wait until writing starts
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    assert os.listdir(out_dir) == []
    assert source.stat().st_size == 3 * 1024**3
