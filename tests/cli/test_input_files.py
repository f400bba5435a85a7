"""Files handed to capture (keys, recipients, a profile) may lie in a folder being captured."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from tests.cli.conftest import invoke
from tests.conftest import skip_or_fail


def _stale(path: Path) -> int:
    os.utime(path, ns=(1_000_000_000, os.stat(path).st_mtime_ns))
    return os.stat(path).st_atime_ns


def test_keys_recipients_and_profile_are_read_keeping_their_access_times(tmp_path: Path, keys):
    downloads = tmp_path / "Downloads"
    downloads.mkdir()
    probe = downloads / "probe"
    probe.write_text("x")
    _stale(probe)
    probe.read_text()
    if os.stat(probe).st_atime_ns == 1_000_000_000:
        skip_or_fail("reading a file does not update its access time on this file system")
    probe.unlink()
    recipient = downloads / "investigator.txt"
    shutil.copy(keys["recipient"], recipient)
    signer = downloads / "signer"
    shutil.copy(keys["signer"], signer)
    profile = downloads / "triage.yaml"
    profile.write_text(f"description: t\ntargets:\n  - name: d\n    linux: ['{downloads}']\n")
    (downloads / "note.txt").write_text("evidence")
    inputs = [recipient, signer, profile]
    before = {path: _stale(path) for path in inputs}
    out = tmp_path / "case.evidence"
    result = invoke("capture", "--profile", profile, "--profile-os", "linux", "-R", recipient,
                    "--sign-key", signer, "-o", out, "--json")
    assert result.code == 0, result.stderr
    assert {path: os.stat(path).st_atime_ns for path in inputs} == before
